package smpcall_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/rtcpayload"
)

// freeUDPPort asks the kernel for a free port on 127.0.0.1.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startTURN runs a real coturn on 127.0.0.1 with a test user, in the
// foreground (no daemon), stopped at the end of the test. CI installs it
// (.ci/run); a developer machine without it skips, CI fails.
func startTURN(t *testing.T) smpcall.ICEServer {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("turnserver (coturn) is not installed; .ci/run installs it")
		}
		t.Skip("turnserver (coturn) is not installed; run .ci/run or apt-get install coturn")
	}
	port := freeUDPPort(t)
	minPort := 40000 + (port % 2000 * 10)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", fmt.Sprintf("--listening-port=%d", port),
		fmt.Sprintf("--min-port=%d", minPort), fmt.Sprintf("--max-port=%d", minPort+9),
		"--lt-cred-mech", "--user=smpcall:test-secret", "--realm=smpcall.test",
		"--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--log-file=stdout", "--simple-log",
		"--pidfile=/dev/null", "--no-multicast-peers", "--userdb="+filepath.Join(t.TempDir(), "turndb"))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	logDone := make(chan struct{})
	var logMu sync.Mutex
	var logTail []string
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			logMu.Lock()
			logTail = append(logTail, sc.Text())
			if len(logTail) > 30 {
				logTail = logTail[1:]
			}
			logMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		<-logDone
	})
	if !stunAnswers(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second) {
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("turnserver did not answer STUN; its log:\n%s", strings.Join(logTail, "\n"))
	}
	return smpcall.ICEServer{URLs: []string{fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", port)}, Username: "smpcall", Credential: "test-secret"}
}

// Both sides relay-only through a real TURN server, as default-configured
// SimpleX apps are (protocol §6.7).
func TestRelayOnlyThroughTURN(t *testing.T) {
	turn := startTURN(t)
	relay := func(c *smpcall.Config) {
		c.ICEServers = []smpcall.ICEServer{turn}
		c.RelayOnly = true
	}
	alice, bob, _ := newRTCPair(t, rtcConfig(relay), rtcConfig(relay), nil)
	sent := frames(40, 100, false)
	var got collector
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio, Sinks: smpcall.Sinks{Mic: got.Audio()}})
	require.NoError(t, err)
	wait[*smpcall.RingingEvent](t, bob.client)
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, &smpcall.CallOptions{Sources: smpcall.Sources{Mic: &audioList{listSource{frames: sent, every: 5 * time.Millisecond}}}})
	require.NoError(t, err)
	// Only relay candidates are offered.
	offer := wait[*smpcall.CallOfferEvent](t, alice.client)
	cands, err := rtcpayload.DecodeCandidates(offer.Offer.RTCIceCandidates)
	require.NoError(t, err)
	for _, c := range cands {
		require.Contains(t, c.Candidate, "typ relay")
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ai, err := ac.WaitConnected(wctx)
	require.NoError(t, err)
	bi, err := bc.WaitConnected(wctx)
	require.NoError(t, err)
	require.True(t, ai.Relay, "alice: %s", ai)
	require.True(t, bi.Relay, "bob: %s", bi)
	require.Equal(t, "relay", ai.LocalType)
	require.Equal(t, "relay", bi.LocalType)
	requireDelivered(t, sent, &got)
}

// stunAnswers polls addr with STUN binding requests (RFC 5389 §6) until one
// is answered or the time is up: the server is then ready.
func stunAnswers(addr string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return false
		}
		req := make([]byte, 20)
		binary.BigEndian.PutUint16(req[0:], 0x0001) // binding request
		binary.BigEndian.PutUint32(req[4:], 0x2112A442)
		copy(req[8:], "smpcall-test")
		_, _ = c.Write(req)
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		resp := make([]byte, 512)
		n, err := c.Read(resp)
		c.Close()
		if err == nil && n >= 20 && binary.BigEndian.Uint16(resp) == 0x0101 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
