package smpcall_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/testnet"
	"github.com/smpcall/smpcall/smp"
)

// udpSockets counts this process's open UDP sockets: the socket
// descriptors in /proc/self/fd whose inodes /proc/net/udp lists.
func udpSockets(t *testing.T) int {
	t.Helper()
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 9 {
				inodes[fs[9]] = true
			}
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(l, "socket:[") && inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
			n++
		}
	}
	return n
}

// muxCalls connects a bot Client (Config.UDPMux = botMux, nil for none)
// to n contacts, each a Client of its own with its own sockets, as n
// people on n devices are; cfg adjusts every Client's Config. It returns
// the bot's calls and the peers' (all connected), what the peers received
// and what the bot sent.
func muxCalls(t *testing.T, n int, botMux *smpcall.UDPMux, cfg func(*smpcall.Config)) (bot, peers []*smpcall.Call, got []*collector, sent [][]byte) {
	t.Helper()
	net := smp.NewNetwork(nil)
	t.Cleanup(func() { require.NoError(t, net.Close()) })
	botCore, err := net.AddUser("bot", nil)
	require.NoError(t, err)
	botCfg := rtcConfig(cfg)
	botCfg.UDPMux = botMux
	botClient, err := smpcall.NewClient(botCore, botCfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, botClient.Close()) })
	sent = frames(50, 100, false)
	for i := range n {
		name := fmt.Sprintf("peer%d", i)
		core, err := net.AddUser(name, nil)
		require.NoError(t, err)
		id, _, err := net.Connect("bot", name)
		require.NoError(t, err)
		c, err := smpcall.NewClient(core, rtcConfig(cfg))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, c.Close()) })
		k, err := botClient.PlaceCall(ctx, id, &smpcall.CallOptions{Media: smpcall.MediaAudio,
			Sources: smpcall.Sources{Mic: &audioList{listSource{frames: sent, every: 10 * time.Millisecond}}}})
		require.NoError(t, err)
		inv, err := c.NextInvitation(ctxWithin(t, waitTime))
		require.NoError(t, err)
		g := &collector{}
		pk, err := c.AcceptCall(ctx, inv.Contact.ContactID, &smpcall.CallOptions{Sinks: smpcall.Sinks{Mic: g.Audio()}})
		require.NoError(t, err)
		bot, peers, got = append(bot, k), append(peers, pk), append(got, g)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i := range bot {
		_, err := bot[i].WaitConnected(wctx)
		require.NoError(t, err, "bot call %d", i)
		_, err = peers[i].WaitConnected(wctx)
		require.NoError(t, err, "peer call %d", i)
	}
	return bot, peers, got, sent
}

// With Config.UDPMux a Client's calls open no sockets of their own: the
// bot's three calls run on the mux's one socket (each peer has its own),
// and every call's path uses the mux's address on the bot's end.
func TestUDPMuxOneSocketForAllCalls(t *testing.T) {
	mux, err := smpcall.ListenUDPMux("127.0.0.1:0")
	require.NoError(t, err)
	defer mux.Close()
	before := udpSockets(t)

	bot, peers, got, sent := muxCalls(t, 3, mux, nil)
	require.Equal(t, before+3, udpSockets(t), "the peers' three sockets, none for the bot's calls")
	for i := range bot {
		bi, pi := bot[i].ConnectionInfo(), peers[i].ConnectionInfo()
		require.Equal(t, mux.Addr().String(), bi.LocalAddress, "call %d: %s", i, bi)
		require.Equal(t, mux.Addr().String(), pi.RemoteAddress, "call %d: %s", i, pi)
		requireDelivered(t, sent, got[i])
	}
	// Without the mux each call has a socket on each end.
	_, _, got2, sent2 := muxCalls(t, 2, nil, nil)
	require.Equal(t, before+3+4, udpSockets(t), "a socket per call and side without the mux")
	requireDelivered(t, sent2, got2[1])
}

// Two Clients with a mux each connect with one socket each.
func TestUDPMuxBothSides(t *testing.T) {
	am, err := smpcall.ListenUDPMux("127.0.0.1:0")
	require.NoError(t, err)
	defer am.Close()
	bm, err := smpcall.ListenUDPMux("127.0.0.1:0")
	require.NoError(t, err)
	defer bm.Close()
	before := udpSockets(t)
	withMux := func(m *smpcall.UDPMux) *smpcall.Config {
		c := rtcConfig(nil)
		c.UDPMux = m
		return c
	}
	alice, bob, _ := newRTCPair(t, withMux(am), withMux(bm), nil)
	sent := frames(50, 100, false)
	var got collector
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio,
		Sources: smpcall.Sources{Mic: &audioList{listSource{frames: sent, every: 10 * time.Millisecond}}}})
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, &smpcall.CallOptions{Sinks: smpcall.Sinks{Mic: got.Audio()}})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ai, err := ac.WaitConnected(wctx)
	require.NoError(t, err)
	bi, err := bc.WaitConnected(wctx)
	require.NoError(t, err)
	require.Equal(t, before, udpSockets(t), "no socket beyond the muxes")
	require.Equal(t, am.Addr().String(), ai.LocalAddress)
	require.Equal(t, bm.Addr().String(), bi.LocalAddress)
	requireDelivered(t, sent, &got)
}

// With the mux on, a call still connects through a TURN relay: both sides
// relay-only, and with TURN offered among the other candidates.
func TestUDPMuxThroughTURN(t *testing.T) {
	turn := testnet.StartTURN(t)
	mux, err := smpcall.ListenUDPMux("127.0.0.1:0")
	require.NoError(t, err)
	defer mux.Close()
	withTURN := func(relayOnly bool) func(*smpcall.Config) {
		return func(c *smpcall.Config) {
			c.ICEServers = []smpcall.ICEServer{{URLs: []string{turn.URL}, Username: turn.Username, Credential: turn.Credential}}
			c.RelayOnly = relayOnly
		}
	}
	bot, peers, got, sent := muxCalls(t, 1, mux, withTURN(true))
	bi, pi := bot[0].ConnectionInfo(), peers[0].ConnectionInfo()
	require.Equal(t, "relay", bi.LocalType, "%s", bi)
	require.Equal(t, "relay", pi.LocalType, "%s", pi)
	requireDelivered(t, sent, got[0])

	// All candidate types: host candidates on the mux, server-reflexive and
	// relay ones from the TURN server. The call connects, on any of them.
	bot, _, got, sent = muxCalls(t, 1, mux, withTURN(false))
	require.NotEmpty(t, bot[0].ConnectionInfo().LocalType)
	requireDelivered(t, sent, got[0])
}

// NewClient refuses a mux it cannot use, naming the field.
func TestUDPMuxConfigRejected(t *testing.T) {
	m, err := smpcall.ListenUDPMux("127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, m.Close())
	require.NoError(t, m.Close(), "Close twice")
	_, err = smpcall.NewClient(noTransport{}, &smpcall.Config{UDPMux: m})
	require.ErrorContains(t, err, "Config.UDPMux: closed")
	_, err = smpcall.NewClient(noTransport{}, &smpcall.Config{UDPMux: &smpcall.UDPMux{}})
	require.ErrorContains(t, err, "Config.UDPMux: not made by ListenUDPMux")

	_, err = smpcall.ListenUDPMux("127.0.0.1:notaport")
	require.ErrorContains(t, err, "UDP mux address")
	busy, err := smpcall.ListenUDPMux("127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	_, err = smpcall.ListenUDPMux(busy.Addr().String())
	require.ErrorContains(t, err, "address already in use")
}

type noTransport struct{ smpcall.Transport }
