package testnet

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/smpcall/smpcall/internal/testtool"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Server is a running TURN server.
type Server struct {
	// URL is "turn:127.0.0.1:<port>?transport=udp".
	URL                  string
	Username, Credential string
}

// SimpleX returns the server in SimpleX's string form, user:pass@ included.
func (s Server) SimpleX() string {
	return strings.Replace(s.URL, "turn:", "turn:"+s.Username+":"+s.Credential+"@", 1)
}

// freeUDPPort asks the kernel for a free port on 127.0.0.1.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// StartTURN runs a real TURN server (Debian's coturn) on 127.0.0.1 with a
// test user, in the foreground (no daemon), stopped when the test ends.
// .ci/run installs coturn; without it a test skips locally and fails in CI
// (the CI environment variable is set).
func StartTURN(t testing.TB) Server {
	t.Helper()
	bin := testtool.Need(t, "turnserver", "coturn")
	port := freeUDPPort(t)
	// 100 relay ports per server: Chrome takes one allocation per candidate
	// per m-line (seven for a four-m-line offer here, more with a candidate
	// pool), and allocations of a finished call linger until they expire.
	minPort := 40000 + (port%200)*100
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", fmt.Sprintf("--listening-port=%d", port),
		fmt.Sprintf("--min-port=%d", minPort), fmt.Sprintf("--max-port=%d", minPort+99),
		"--no-tcp", "--no-tcp-relay", // UDP only: its TCP listener could clash with another process's port
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
	return Server{URL: fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", port), Username: "smpcall", Credential: "test-secret"}
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
