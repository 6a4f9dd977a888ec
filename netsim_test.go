package smpcall_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/netsim"
	"github.com/smpcall/smpcall/internal/rtcpayload"
	"github.com/smpcall/smpcall/smp"
)

// simSide is one party of a call over a simulated network.
type simSide struct {
	client *smpcall.Client
	call   *smpcall.Call
	peerID int64
	audio  collector
	video  collector
	sentA  [][]byte
	sentV  [][]byte
}

// simCall is a call between two SDK clients whose signaling crosses the smp
// loopback and whose media crosses a netsim network. Everything runs in the
// caller's synctest bubble.
type simCall struct {
	n          *netsim.Net
	alice, bob *simSide
	wire       *wireLog
	setup      time.Duration
}

// wireLog keeps the x.call.* messages that crossed the loopback.
type wireLog struct {
	mu  sync.Mutex
	log []string
}

func (w *wireLog) trace(tr smp.Trace) {
	m, err := smp.DecodeMessage(tr.Data)
	if err != nil {
		return
	}
	line := tr.From + ">" + tr.To + " " + m.Event
	if m.Extra != nil {
		if r, err := rtcpayload.DecodeRestart(m.Extra.RTCExtraInfo.RTCIceCandidates); err == nil {
			line += " " + r.T
		}
	}
	w.mu.Lock()
	w.log = append(w.log, line)
	w.mu.Unlock()
}

func (w *wireLog) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.log...)
}

type simOptions struct {
	seed      int64
	media     smpcall.CallMediaType
	frames    time.Duration // how long each side sends
	videoSize int
	// mod changes a side's Config.
	mod func(side netsim.Side, c *smpcall.Config)
}

func iceServers(n *netsim.Net, s netsim.Side) []smpcall.ICEServer {
	var out []smpcall.ICEServer
	for _, srv := range n.ICEServers(s) {
		cred, _ := srv.Credential.(string)
		out = append(out, smpcall.ICEServer{URLs: srv.URLs, Username: srv.Username, Credential: cred})
	}
	return out
}

// startSimCall connects a call over p and starts media; it returns once both
// sides are connected (or fails the test).
func startSimCall(t *testing.T, p netsim.Profile, o simOptions) *simCall {
	t.Helper()
	n, err := netsim.New(t, p, o.seed)
	require.NoError(t, err)
	sc := &simCall{n: n, alice: &simSide{}, bob: &simSide{}, wire: &wireLog{}}
	net := smp.NewNetwork(&smp.NetworkConfig{Trace: sc.wire.trace})
	t.Cleanup(func() { require.NoError(t, net.Close()) })
	ac, _ := net.AddUser("alice", nil)
	bc, _ := net.AddUser("bob", nil)
	sc.alice.peerID, sc.bob.peerID, err = net.Connect("alice", "bob")
	require.NoError(t, err)
	for side, s := range map[netsim.Side]*simSide{netsim.A: sc.alice, netsim.B: sc.bob} {
		cfg := &smpcall.Config{SettingEngine: n.SettingEngine(side), ICEServers: iceServers(n, side), RelayOnly: p.RelayOnly,
			ConnectTimeout: 60 * time.Second}
		if o.mod != nil {
			o.mod(side, cfg)
		}
		core := ac
		if side == netsim.B {
			core = bc
		}
		s.client, err = smpcall.NewClient(core, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.client.Close()) })
	}
	media := o.media
	if media == "" {
		media = smpcall.MediaVideo
	}
	size := o.videoSize
	if size == 0 {
		size = 3000 // three packets
	}
	nA, nV := int(o.frames/(20*time.Millisecond)), int(o.frames/(33*time.Millisecond))
	for _, s := range []*simSide{sc.alice, sc.bob} {
		s.sentA = frames(nA, 100, false)
		if media == smpcall.MediaVideo {
			s.sentV = frames(nV, size, true)
		}
	}
	opts := func(s *simSide) *smpcall.CallOptions {
		o := &smpcall.CallOptions{Media: media,
			Sources: smpcall.Sources{Mic: &audioList{listSource{frames: s.sentA, every: 20 * time.Millisecond}}},
			Sinks:   smpcall.Sinks{Mic: s.audio.Audio(), Camera: s.video.Video()}}
		if s.sentV != nil {
			o.Sources.Camera = &videoList{listSource{frames: s.sentV, every: 33 * time.Millisecond}}
		}
		return o
	}
	start := time.Now()
	sc.alice.call, err = sc.alice.client.PlaceCall(ctx, sc.alice.peerID, opts(sc.alice))
	require.NoError(t, err)
	inv, err := sc.bob.client.NextInvitation(ctxWithin(t, time.Minute))
	require.NoError(t, err)
	sc.bob.call, err = sc.bob.client.AcceptCall(ctx, inv.Contact.ContactID, opts(sc.bob))
	require.NoError(t, err)
	wctx := ctxWithin(t, 2*time.Minute)
	_, errA := sc.alice.call.WaitConnected(wctx)
	_, errB := sc.bob.call.WaitConnected(wctx)
	sc.setup = time.Since(start)
	if errA != nil || errB != nil {
		ra, ea := sc.alice.call.Reason()
		rb, eb := sc.bob.call.Reason()
		t.Fatalf("over %s (seed %d): alice %v (%s, %v), bob %v (%s, %v); wire %q", p.Name, o.seed, errA, ra, ea, errB, rb, eb, sc.wire.lines())
	}
	return sc
}

// end hangs up and waits for both calls to finish.
func (sc *simCall) end(t *testing.T) {
	require.NoError(t, sc.alice.call.End(ctx))
	<-sc.bob.call.Done()
}

// delivered checks what a side received against what the other sent: every
// frame byte-identical to the one sent with its index, in order; and
// returns how many arrived.
func delivered(t *testing.T, sent [][]byte, c *collector) int {
	t.Helper()
	last := -1
	got := c.got()
	for _, f := range got {
		require.GreaterOrEqual(t, len(f), 3)
		i := int(f[1])<<8 | int(f[2])
		require.Less(t, i, len(sent))
		require.Greater(t, i, last, "in order")
		last = i
		require.True(t, bytes.Equal(sent[i], f), "frame %d differs", i)
	}
	return len(got)
}

// matrixRow is one line of the network matrix table.
type matrixRow struct {
	profile               string
	connected             bool
	setup                 time.Duration
	path                  string
	audioSent, audioGot   int
	videoSent, videoGot   int
	decryptFailed         uint64
	netLost, packetsLost  uint64
	recovered, framesLost uint64
	late                  uint64
	videoPct, audioPct    float64
}

func (r matrixRow) String() string {
	return fmt.Sprintf("| %s | %v | %d ms | %s | %d/%d (%.1f %%) | %d/%d (%.1f %%) | %d | %d | %d | %d | %d | %d |",
		r.profile, r.connected, r.setup.Milliseconds(), r.path, r.videoGot, r.videoSent, r.videoPct, r.audioGot, r.audioSent, r.audioPct,
		r.decryptFailed, r.netLost, r.packetsLost, r.recovered, r.late, r.framesLost)
}

// matrixProfiles are the profiles plus reordering alone.
func matrixProfiles() []netsim.Profile {
	ps := netsim.Profiles()
	ps = append(ps, netsim.Profile{Name: "reorder-only", Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond, Reorder: 0.05,
		NATA: netsim.NATAddressPortDependent, NATB: netsim.NATAddressPortDependent, TURN: true})
	return ps
}

// TestNetworkMatrix runs an encrypted video call (30 frames/s of 3 KB video,
// 250 B under a bandwidth cap, and 50 frames/s of audio each way, 10 s)
// over every simulated network
// profile in virtual time: the call connects, frames flow both ways,
// every one decrypts, what arrives is byte-identical and in order, and the
// stats show the loss the network caused. `go test -run TestNetworkMatrix
// -v` prints the table that RELIABILITY.md records.
func TestNetworkMatrix(t *testing.T) {
	var rows []matrixRow
	for _, p := range matrixProfiles() {
		t.Run(p.Name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := simOptions{seed: 1, frames: 10 * time.Second}
				if p.Bandwidth > 0 {
					// An encoder adapts to the path; a fixed source must fit it:
					// 250-byte frames at 30/s and the audio fit the 300 kbit/s
					// cap with room for retransmissions (headers and the
					// frame trailer included).
					o.videoSize = 250
				}
				sc := startSimCall(t, p, o)
				time.Sleep(12 * time.Second) // the media, and time for the last retransmissions
				t.Logf("%s: RTT seen by alice %v, bob %v", p.Name, sc.alice.call.Stats().RTT, sc.bob.call.Stats().RTT)
				row := matrixRow{profile: p.Name, connected: true, setup: sc.setup, path: sc.alice.call.ConnectionInfo().LocalType + "/" + sc.alice.call.ConnectionInfo().RemoteType}
				var dirPct []float64 // video delivered, each direction
				for _, pair := range [][2]*simSide{{sc.alice, sc.bob}, {sc.bob, sc.alice}} {
					from, to := pair[0], pair[1]
					st := to.call.Stats()
					got := delivered(t, from.sentV, &to.video)
					dirPct = append(dirPct, 100*float64(got)/float64(len(from.sentV)))
					row.audioSent += len(from.sentA)
					row.videoSent += len(from.sentV)
					row.audioGot += delivered(t, from.sentA, &to.audio)
					row.videoGot += got
					for _, s := range st.Streams {
						row.decryptFailed += s.DecryptFailed
						row.recovered += s.PacketsRecovered
						row.late += s.PacketsLate
						row.framesLost += s.FramesLost
						if s.PacketsLost > 0 {
							row.packetsLost += uint64(s.PacketsLost)
						}
					}
				}
				ns := sc.n.Stats()
				row.netLost = ns.A.Lost + ns.B.Lost + ns.A.QueueDrops + ns.B.QueueDrops
				row.videoPct = 100 * float64(row.videoGot) / float64(row.videoSent)
				row.audioPct = 100 * float64(row.audioGot) / float64(row.audioSent)
				sc.end(t)

				require.Zero(t, row.decryptFailed, "every frame that arrived decrypted")
				require.Positive(t, row.videoGot, "video flowed")
				require.Positive(t, row.audioGot, "audio flowed")
				if p.Loss.Random > 0 || p.Loss.BurstEnter > 0 {
					require.Positive(t, row.netLost, "the network dropped packets")
					require.Positive(t, row.packetsLost+row.recovered, "the receivers saw it")
				}
				switch p.Name {
				case "clean", "reorder-only", "symmetric-nat-turn", "relay-only":
					require.Equal(t, row.videoSent, row.videoGot, "no loss: every video frame arrives")
				case "wan-50ms-5pct":
					t.Logf("%s: video delivered alice → bob %.1f %%, bob → alice %.1f %%", p.Name, dirPct[0], dirPct[1])
					// The bar: 5 % loss, 100 ms RTT, each direction.
					for i, pct := range dirPct {
						require.GreaterOrEqual(t, pct, 95.0, "5 %% loss: at least 95 %% of video frames (direction %d)", i)
					}
				case "wan-100ms-5pct":
					// Twice the RTT: the two directions together.
					require.GreaterOrEqual(t, row.videoPct, 95.0, "5 %% loss: at least 95 %% of video frames")
				}
				rows = append(rows, row)
			})
		})
	}
	t.Log("| profile | connected | setup | path (alice) | video delivered | audio delivered | decrypt failures | packets lost by the network | lost seen by receivers (RTP) | packets recovered | packets too late | frames given up |")
	t.Log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		t.Log(r.String())
	}
}
