package smpcall

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := (*Config)(nil).resolve()
	require.NoError(t, err)
	require.Equal(t, 180*time.Second, cfg.RingWindow)
	require.Equal(t, 60*time.Second, cfg.RingTimeout)
	require.Equal(t, BusyRing, cfg.Busy)
	require.Equal(t, 5*time.Second, cfg.CloseTimeout)
	require.Equal(t, 128, cfg.EventBuffer)
	require.Equal(t, 15*time.Second, cfg.SignalingTimeout)
	require.Equal(t, 5, cfg.DecryptFailureThreshold)
	require.Equal(t, 3*time.Second, cfg.PeerMediaTimeout)
	require.NotNil(t, cfg.Logger)
}

// Never (any negative duration) turns a timer off; it resolves to 0, which
// the timers read as "off" (zero in a Config means the default).
func TestConfigNeverTurnsTimersOff(t *testing.T) {
	cfg, err := (&Config{RingWindow: Never, RingTimeout: Never, CloseTimeout: Never, ConnectTimeout: -time.Second,
		SignalingTimeout: Never, PeerMediaTimeout: Never}).resolve()
	require.NoError(t, err)
	for name, d := range map[string]time.Duration{"RingWindow": cfg.RingWindow, "RingTimeout": cfg.RingTimeout,
		"CloseTimeout": cfg.CloseTimeout, "ConnectTimeout": cfg.ConnectTimeout, "SignalingTimeout": cfg.SignalingTimeout,
		"PeerMediaTimeout": cfg.PeerMediaTimeout} {
		require.Zero(t, d, name)
	}
}

func TestConfigRejectsImpossibleValues(t *testing.T) {
	for want, cfg := range map[string]Config{
		"Config.MaxMessageSize: 500 is outside [2048, 15602]":        {MaxMessageSize: 500},
		"Config.MaxMessageSize: 20000 is outside":                    {MaxMessageSize: 20000},
		"Config.EventBuffer: -1 is negative":                         {EventBuffer: -1},
		"Config.DecryptFailureThreshold: -2 is negative":             {DecryptFailureThreshold: -2},
		"Config.Busy: unknown policy 7":                              {Busy: 7},
		"Config.ICE.InitialDelay: -1s is negative":                   {ICE: ICEBatching{InitialDelay: -time.Second}},
		"Config.ICE.ExtrasInterval: 1ms is below 10ms":               {ICE: ICEBatching{ExtrasInterval: time.Millisecond}},
		"Config.ICEAcceptance.Relay: -1ns is negative":               {ICEAcceptance: &ICEAcceptance{Relay: -1}},
		"Config.ICEServers[0]: no URLs":                              {ICEServers: []ICEServer{{}}},
		`Config.ICEServers[0]: "http://example.com"`:                 {ICEServers: []ICEServer{{URLs: []string{"http://example.com"}}}},
		`Config.ICEServers[1]: "turn:u:***@x:3478?transport=carrier`: {ICEServers: []ICEServer{{URLs: []string{"stun:a:3478"}}, {URLs: []string{"turn:u:secret@x:3478?transport=carrier"}}}},
	} {
		_, err := cfg.resolve()
		require.ErrorContains(t, err, want)
		require.NotContains(t, err.Error(), "secret")
	}
	// Several problems are all reported.
	_, err := (&Config{MaxMessageSize: 1, EventBuffer: -1}).resolve()
	require.ErrorContains(t, err, "MaxMessageSize")
	require.ErrorContains(t, err, "EventBuffer")
	// NewClient refuses such a Config.
	_, err = NewClient(nopTransport{}, &Config{MaxMessageSize: 1})
	require.ErrorContains(t, err, "Config.MaxMessageSize")
}

// nopTransport is a Transport that does nothing, for tests that never get
// as far as signaling.
type nopTransport struct{ Transport }
