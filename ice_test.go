package smpcall

import (
	"testing"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

func TestParseICEServer(t *testing.T) {
	for in, want := range map[string]ICEServer{
		"stun:stun.simplex.im:443":                           {URLs: []string{"stun:stun.simplex.im:443"}},
		"stun:stun.simplex.im:443?transport=tcp":             {URLs: []string{"stun:stun.simplex.im:443?transport=tcp"}},
		"turn:user:pass@turn.example.com:3478?transport=udp": {URLs: []string{"turn:turn.example.com:3478?transport=udp"}, Username: "user", Credential: "pass"},
		"turns:private2:Hxuq2QxU@turn.simplex.im:443":        {URLs: []string{"turns:turn.simplex.im:443"}, Username: "private2", Credential: "Hxuq2QxU"},
		"turn:u:p:with:colons@10.0.0.1":                      {URLs: []string{"turn:10.0.0.1"}, Username: "u", Credential: "p:with:colons"},
		"stuns:stun.simplex.im:443":                          {URLs: []string{"stuns:stun.simplex.im:443"}},
	} {
		got, err := ParseICEServer(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for in, want := range map[string]string{
		"stun.simplex.im:443":                  "unknown scheme",
		"http://x":                             "unknown scheme",
		"nothing":                              "no scheme",
		"turn:turn.example.com:3478":           "TURN needs user:password@",
		"turn::secret@host":                    "credentials must be user:password",
		"turn:user:secret@host?transport=sctp": "unsupported query",
		"stun:":                                "bad host",
	} {
		_, err := ParseICEServer(in)
		require.ErrorContains(t, err, want, in)
		require.NotContains(t, err.Error(), "secret", "passwords never appear in errors")
	}
}

func TestDefaultsMatchTheApps(t *testing.T) {
	cfg, err := (*Config)(nil).resolve()
	require.NoError(t, err)
	require.Equal(t, DefaultICEServers, cfg.ICEServers)
	require.Equal(t, "turns:turn.simplex.im:443?transport=tcp", DefaultICEServers[2].URLs[0])
	require.Equal(t, 750, int(cfg.ICE.InitialDelay.Milliseconds()))
	require.Equal(t, 1500, int(cfg.ICE.ExtrasInterval.Milliseconds()))
	require.Equal(t, 12000, int(cfg.ICE.ExtrasTimeout.Milliseconds()))
	require.Equal(t, 13000, cfg.MaxMessageSize)
	require.Equal(t, 30.0, cfg.ConnectTimeout.Seconds())
	require.False(t, cfg.AllowUnencrypted)
	// Every default server is one pion accepts.
	for _, s := range cfg.ICEServers {
		pc, err := webrtc.NewPeerConnection(webrtc.Configuration{ICEServers: []webrtc.ICEServer{s.pion()}})
		require.NoError(t, err)
		require.NoError(t, pc.Close())
	}
	empty, err := (&Config{ICEServers: []ICEServer{}}).resolve()
	require.NoError(t, err)
	require.Empty(t, empty.ICEServers)
}

func TestVideoHasVP8(t *testing.T) {
	require.True(t, videoHasVP8("v=0\r\nm=audio 9 UDP 111\r\na=rtpmap:111 opus/48000/2\r\n"))
	require.True(t, videoHasVP8("v=0\r\nm=video 9 UDP 96\r\na=rtpmap:96 VP8/90000\r\n"))
	require.False(t, videoHasVP8("v=0\r\nm=video 9 UDP 102\r\na=rtpmap:102 H264/90000\r\n"))
	s, ok := streamOfMid("2")
	require.True(t, ok)
	require.Equal(t, streamScreenAudio, s)
	_, ok = streamOfMid("video")
	require.False(t, ok)
}
