package smpcall

import (
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// This file is what the calls of one Client share in pion, and the
// interceptor the SDK adds to pion's.

// pionShared is what the calls of one Client share: the pion API (its
// media engine, interceptor factories and settings) and the peer
// connection configuration. Everything in it depends on the Config alone,
// and pion keeps no call's state in it: NewPeerConnection copies the media
// engine (negotiation writes the copy) and builds a fresh interceptor chain
// from the registry's factories, and the setting engine is only read.
// Building them once per Client instead of once per call saves the setup
// work and garbage of a media engine, a registry and an API per call.
type pionShared struct {
	api *webrtc.API
	rc  webrtc.Configuration
}

// newPionShared builds the API with the SimpleX codecs and cfg's ICE policy.
func newPionShared(cfg *Config) (*pionShared, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb},
		PayloadType:        vp8PayloadType,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        opusPayloadType,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	// First in the chain, so that pion's report interceptor writes through it.
	ir.Add(heardFilterFactory{})
	// NACKs every 20 ms (pion: 100 ms), so that a lost packet's
	// retransmission arrives within the receive buffer's wait; at most 10
	// per packet (pion: unlimited). The sender resends a packet at most once
	// per RTT, so more requests only cost uplink: on a 300 kbit/s path with
	// 500 ms RTT, unlimited NACKs and their resends took a third of the
	// capacity (TestNetworkMatrix, sat profile), and Chrome's padding, which
	// is never resent, was NACKed for as long as it stayed in the window.
	//
	// The responder keeps the last nackHistory packets of each video sender
	// for resending (pion: 1024).
	var se webrtc.SettingEngine
	if cfg.SettingEngine != nil {
		se = *cfg.SettingEngine
	}
	opts := []webrtc.InterceptorOption{
		webrtc.WithNackGeneratorOptions(nack.GeneratorInterval(nackInterval), nack.GeneratorMaxNacksPerPacket(10)),
		webrtc.WithNackResponderOptions(nack.ResponderSize(nackHistory)),
	}
	if se.LoggerFactory == nil {
		// pion's default loggers, one per scope for every call, instead of
		// a set per peer connection and interceptor (13 KiB a call).
		lf := &loggerCache{f: logging.NewDefaultLoggerFactory(), m: map[string]logging.LeveledLogger{}}
		se.LoggerFactory = lf
		opts = append(opts, webrtc.WithInterceptorLoggerFactory(lf))
	}
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(m, ir, opts...); err != nil {
		return nil, err
	}
	// A silent path counts as interrupted after pathTimeout; ICE gives up
	// (deleting its candidates) only when the reconnection budget is spent.
	se.SetICETimeouts(pathTimeout, max(cfg.ReconnectBudget, pathTimeout), keepalive)
	acc := DefaultICEAcceptance
	switch {
	case cfg.ICEAcceptance != nil:
		acc = *cfg.ICEAcceptance
	case cfg.RelayOnly:
		acc = RelayOnlyICEAcceptance
	}
	acc.apply(&se)
	if cfg.UDPMux != nil {
		se.SetICEUDPMux(cfg.UDPMux.mux)
	}
	rc := webrtc.Configuration{ICEServers: make([]webrtc.ICEServer, 0, len(cfg.ICEServers))}
	for _, s := range cfg.ICEServers {
		rc.ICEServers = append(rc.ICEServers, s.pion())
	}
	if cfg.RelayOnly {
		rc.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return &pionShared{
		api: webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)),
		rc:  rc,
	}, nil
}

// nackHistory is how many sent packets of each video stream are kept for
// NACK retransmission (a power of two): 256 are 1 s of a 2.5 Mbit/s screen
// share in 1,200-byte packets and 8 s of a 300 kbit/s camera, where a
// resend is useful only within a round trip plus the receiver's wait.
// pion's 1,024 cost 16 KiB a call for the two video senders, which exist
// (and keep their buffers) even in audio calls.
const nackHistory = 256

// loggerCache is a logging.LoggerFactory that makes one logger per scope
// and hands it to every call. pion's loggers are safe for concurrent use.
type loggerCache struct {
	f  logging.LoggerFactory
	mu sync.Mutex
	m  map[string]logging.LeveledLogger // bounded: pion's scopes are fixed names
}

// NewLogger implements logging.LoggerFactory.
func (c *loggerCache) NewLogger(scope string) logging.LeveledLogger {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[scope]
	if !ok {
		l = c.f.NewLogger(scope)
		c.m[scope] = l
	}
	return l
}

// heardFilter keeps pion's receiver reports to the sources this side has
// heard from. pion's report interceptor sends a receiver report every
// second for every remote stream it knows from the SDP, heard or not; RFC
// 3550 §6.4.2 reports only on sources heard from, and Chrome does so. A
// SimpleX session has four m-lines and most calls use one or two, so
// without the filter two SDK peers trade three reports a second each way
// about streams that never sent, each a UDP packet to encrypt and decrypt,
// and the peer, which reads RTCP only on the senders that send
// (startSender), keeps them in pion's unread per-stream buffers until
// those fill (100 KB each).
type heardFilter struct {
	interceptor.NoOp
	mu    sync.Mutex
	heard map[uint32]*atomic.Bool // by remote SSRC: a packet came
}

type heardFilterFactory struct{}

// NewInterceptor implements interceptor.Factory.
func (heardFilterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &heardFilter{heard: map[uint32]*atomic.Bool{}}, nil
}

// BindRemoteStream notes the stream's first packet.
func (f *heardFilter) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	heard := &atomic.Bool{}
	f.mu.Lock()
	f.heard[info.SSRC] = heard
	f.mu.Unlock()
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err == nil && !heard.Load() {
			heard.Store(true)
		}
		return n, a, err
	})
}

// UnbindRemoteStream forgets the stream.
func (f *heardFilter) UnbindRemoteStream(info *interceptor.StreamInfo) {
	f.mu.Lock()
	delete(f.heard, info.SSRC)
	f.mu.Unlock()
}

// BindRTCPWriter drops receiver reports whose only block is about a
// stream not heard from (pion writes one such report per stream).
func (f *heardFilter) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		if len(pkts) == 1 {
			if rr, ok := pkts[0].(*rtcp.ReceiverReport); ok && len(rr.Reports) == 1 && !f.heardFrom(rr.Reports[0].SSRC) {
				return 0, nil
			}
		}
		return w.Write(pkts, a)
	})
}

func (f *heardFilter) heardFrom(ssrc uint32) bool {
	f.mu.Lock()
	heard := f.heard[ssrc]
	f.mu.Unlock()
	return heard == nil || heard.Load() // unknown: not ours to judge
}
