// Package testnet holds what the tests of several packages need to run
// real calls without leaving the machine: pion settings that keep ICE on
// 127.0.0.1, the simulated chat core on real WebSockets, a real TURN
// server, and the media fixtures. Only tests import it.
package testnet

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/smp"
	"github.com/smpcall/smpcall/video"
)

// LoopbackSettings keeps pion on 127.0.0.1. Both the interface filter and
// the loopback candidate setting are needed: pion drops loopback candidates
// unless told to include them. mDNS is off, so pion opens no multicast
// socket and sends no queries: nothing leaves 127.0.0.1.
func LoopbackSettings() *webrtc.SettingEngine {
	se := &webrtc.SettingEngine{}
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return se
}

// LoopbackConfig is a Client configuration for tests: no STUN/TURN
// servers, host candidates on 127.0.0.1 only.
func LoopbackConfig() *smpcall.Config {
	return &smpcall.Config{ICEServers: []smpcall.ICEServer{}, SettingEngine: LoopbackSettings()}
}

// SimCore runs the simulated chat core in-process: the users on an smp
// loopback network, every pair connected, each served by a ChatServer on a
// real WebSocket on 127.0.0.1. It returns each user's URL; everything stops
// when the test ends.
func SimCore(t testing.TB, users ...string) map[string]string {
	t.Helper()
	n := smp.NewNetwork(nil)
	urls := map[string]string{}
	var closers []func()
	t.Cleanup(func() {
		for _, c := range closers {
			c()
		}
		require.NoError(t, n.Close())
	})
	for _, u := range users {
		core, err := n.AddUser(u, nil)
		require.NoError(t, err)
		srv := smp.NewChatServer(core, nil)
		hs := httptest.NewServer(srv)
		urls[u] = "ws" + strings.TrimPrefix(hs.URL, "http")
		closers = append(closers, func() { srv.Close(); hs.Close() })
	}
	for i := range users {
		for j := i + 1; j < len(users); j++ {
			_, _, err := n.Connect(users[i], users[j])
			require.NoError(t, err)
		}
	}
	return urls
}

// Media returns the path of a fixture in the repository's testdata/media.
func Media(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "media", name)
}

type frameReader[F any] interface {
	ReadFrame(context.Context) (F, error)
	Close() error
}

func readAll[F any](t testing.TB, src frameReader[F], err error, data func(F) []byte) [][]byte {
	t.Helper()
	require.NoError(t, err)
	defer src.Close()
	var out [][]byte
	for {
		f, err := src.ReadFrame(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, data(f))
	}
}

// OpusPackets reads every packet of an Ogg Opus file.
func OpusPackets(t testing.TB, path string) [][]byte {
	src, err := audio.OpenOggSource(path, nil)
	return readAll[audio.Frame](t, src, err, func(f audio.Frame) []byte { return f.Data })
}

// VP8Frames reads every frame of an IVF file.
func VP8Frames(t testing.TB, path string) [][]byte {
	src, err := video.OpenIVFSource(path, nil)
	return readAll[video.Frame](t, src, err, func(f video.Frame) []byte { return f.Data })
}
