package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	s := out.String()
	for _, want := range []string{
		`alice → bob   {"v":"1-16","msgId":`, `"event":"x.call.inv"`, `"event":"x.call.offer"`,
		`"event":"x.call.answer"`, `"event":"x.call.extra"`, `"event":"x.call.end"`,
		"shared key agreed: true (equal on both sides: true)",
		"before end: alice connected, bob connected",
		"bob: call ended (remote_hangup)",
		"alice's chat item: outgoing call: ended (00:00)",
		"final: alice none, bob none",
	} {
		require.Contains(t, s, want)
	}
	require.Equal(t, 5, strings.Count(s, `"event":"x.call.`))
}
