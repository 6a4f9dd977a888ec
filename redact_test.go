package smpcall_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
)

// keyForms are the ways a key's bytes could show up in text.
func keyForms(k smpcall.SharedKey) []string {
	return []string{
		k.Encode(),
		base64.RawURLEncoding.EncodeToString(k[:]),
		base64.StdEncoding.EncodeToString(k[:]),
		hex.EncodeToString(k[:]),
		strings.ToUpper(hex.EncodeToString(k[:])),
		fmt.Sprint(k[:]), // [12 34 …]
		string(k[:]),
	}
}

func requireNoKey(t *testing.T, out string, k smpcall.SharedKey, what string) {
	t.Helper()
	for _, form := range keyForms(k) {
		require.NotContains(t, out, form, "%s leaks the key", what)
	}
}

func testKey() smpcall.SharedKey {
	var k smpcall.SharedKey
	for i := range k {
		k[i] = byte(0xA0 + i) // no zero bytes, distinct
	}
	return k
}

// Every fmt verb, on the key, a pointer to it, and the values that carry it.
func TestSharedKeyNeverFormats(t *testing.T) {
	k := testKey()
	inv := smpcall.RcvCallInvitation{Contact: smpcall.Contact{ContactID: 2}, CallType: smpcall.DefaultCallType, SharedKey: &k}
	info := smpcall.CallInfo{SharedKey: &k}
	offer := &smpcall.CallOfferEvent{SharedKey: &k}
	// %p is left out: on a non-pointer fmt prints the value without asking
	// its Formatter, and go vet reports such a call ("wrong type").
	require.NotContains(t, fmt.Sprintf("%p", &k), "160 161")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%O", "%b", "%c", "%U", "%e", "%t", "%8.3v", "%-40s"} {
		for name, v := range map[string]any{"key": k, "*key": &k, "invitation": inv, "info": info, "offer": offer, "slice": []smpcall.SharedKey{k}} {
			out := fmt.Sprintf(verb, v)
			requireNoKey(t, out, k, name+" "+verb)
		}
	}
	require.Equal(t, "SharedKey(redacted)", fmt.Sprintf("%x", k))
}

// Text and JSON slog handlers, every level, the SDK's types as attributes.
func TestSharedKeyNeverLogs(t *testing.T) {
	k := testKey()
	inv := smpcall.RcvCallInvitation{Contact: smpcall.Contact{ContactID: 2}, CallType: smpcall.DefaultCallType, SharedKey: &k, CallTs: smpcall.CoreTime{Time: time.Now()}}
	values := map[string]any{
		"key": k, "*key": &k, "invitation": inv, "*invitation": &inv,
		"invitationEvent": &smpcall.CallInvitationEvent{Invitation: inv},
		"ringing":         &smpcall.RingingEvent{Invitation: inv},
		"offer":           &smpcall.CallOfferEvent{SharedKey: &k},
		"info":            smpcall.CallInfo{SharedKey: &k},
	}
	for _, json := range []bool{false, true} {
		var buf bytes.Buffer
		opts := &slog.HandlerOptions{Level: slog.LevelDebug}
		var h slog.Handler = slog.NewTextHandler(&buf, opts)
		if json {
			h = slog.NewJSONHandler(&buf, opts)
		}
		log := slog.New(h)
		for name, v := range values {
			for _, lvl := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
				log.Log(t.Context(), lvl, "value", name, v)
				log.Log(t.Context(), lvl, "value", slog.Group("g", slog.Any(name, v)))
			}
		}
		out := buf.String()
		require.Contains(t, out, "redacted")
		requireNoKey(t, out, k, fmt.Sprintf("slog (json=%v)", json))
	}
}

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A whole encrypted call logged at debug level on both sides: the key
// agreed for it appears nowhere in the logs.
func TestCallLogsHaveNoKey(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	withLog := func(c *smpcall.Config) { c.Logger = logger }
	var tp taps
	alice, bob, _ := newRTCPair(t, rtcConfig(withLog), rtcConfig(withLog), tp.wrap)
	ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{Media: smpcall.MediaAudio,
		Sources: smpcall.Sources{Mic: &audioList{listSource{frames: frames(20, 60, false), every: 5 * time.Millisecond}}}})
	require.NoError(t, err)
	inv, err := bob.client.NextInvitation(ctxWithin(t, waitTime))
	require.NoError(t, err)
	require.NotNil(t, inv.SharedKey)
	key := *inv.SharedKey
	logger.Info("the embedder logs what it got", "invitation", inv, "info", must(bob.client.CallInfo(bob.peerID)))
	bc, err := bob.client.AcceptCall(ctx, bob.peerID, nil)
	require.NoError(t, err)
	_, err = bc.WaitConnected(ctxWithin(t, 20*time.Second))
	require.NoError(t, err)
	offer := waitTap[*smpcall.CallOfferEvent](t, &tp, "alice")
	logger.Debug("offer", "event", offer)
	require.NoError(t, ac.End(ctx))
	<-bc.Done()
	out := logs.String()
	require.Contains(t, out, "call connected", "the logs were captured")
	requireNoKey(t, out, key, "the call's logs")
}

func must[T any](v T, ok bool) T {
	if !ok {
		panic("must: not ok")
	}
	return v
}
