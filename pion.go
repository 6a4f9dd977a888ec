package smpcall

import (
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/stats"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
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
	var se webrtc.SettingEngine
	if cfg.SettingEngine != nil {
		se = *cfg.SettingEngine
	}
	if err := registerInterceptors(m, ir, &se); err != nil {
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

// registerInterceptors registers pion's default interceptors as
// webrtc.RegisterDefaultInterceptorsWithOptions does (the same media engine
// feedback and header extensions, the same interceptors in the same
// order), with the SDK's options, and with the two whose goroutine ticks
// for the peer connection's whole life wrapped in lazyLoop: the NACK
// generator starts with the first video packet, the transport-wide
// congestion control feedback with the first packet that carries its
// sequence number. An audio call between two SDK peers needs neither; at
// 20 ms the NACK generator alone woke 50 times a second per call.
func registerInterceptors(m *webrtc.MediaEngine, ir *interceptor.Registry, se *webrtc.SettingEngine) error {
	var lf logging.LoggerFactory
	if se.LoggerFactory == nil {
		// pion's default loggers, one per scope for every call, instead of
		// a set per peer connection and interceptor (13 KiB a call).
		lf = &loggerCache{f: logging.NewDefaultLoggerFactory(), m: map[string]logging.LeveledLogger{}}
		se.LoggerFactory = lf
	}
	// NACKs every 20 ms (pion: 100 ms), so that a lost packet's
	// retransmission arrives within the receive buffer's wait; at most 10
	// per packet (pion: unlimited). The sender resends a packet at most once
	// per RTT, so more requests only cost uplink: on a 300 kbit/s path with
	// 500 ms RTT, unlimited NACKs and their resends took a third of the
	// capacity (TestNetworkMatrix, sat profile), and Chrome's padding, which
	// is never resent, was NACKed for as long as it stayed in the window.
	// The responder keeps the last nackHistory packets of each video sender
	// for resending (pion: 1024).
	genOpts := []nack.GeneratorOption{nack.GeneratorInterval(nackInterval), nack.GeneratorMaxNacksPerPacket(10)}
	respOpts := []nack.ResponderOption{nack.ResponderSize(nackHistory)}
	var recvOpts []report.ReceiverOption
	var sendOpts []report.SenderOption
	var statsOpts []stats.Option
	var twccOpts []twcc.Option
	if lf != nil {
		genOpts = append(genOpts, nack.WithGeneratorLoggerFactory(lf))
		respOpts = append(respOpts, nack.WithResponderLoggerFactory(lf))
		recvOpts = append(recvOpts, report.WithReceiverLoggerFactory(lf))
		sendOpts = append(sendOpts, report.WithSenderLoggerFactory(lf))
		statsOpts = append(statsOpts, stats.WithLoggerFactory(lf))
		twccOpts = append(twccOpts, twcc.WithLoggerFactory(lf))
	}

	// webrtc.ConfigureNackWithOptions
	generator, err := nack.NewGeneratorInterceptor(genOpts...)
	if err != nil {
		return err
	}
	responder, err := nack.NewResponderInterceptor(respOpts...)
	if err != nil {
		return err
	}
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	ir.Add(responder)
	ir.Add(lazyLoopFactory{inner: generator, extURI: ""})

	if err := webrtc.ConfigureRTCPReportsWithOptions(ir, recvOpts, sendOpts...); err != nil {
		return err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return err
	}
	if err := webrtc.ConfigureStatsInterceptorWithOptions(ir, statsOpts...); err != nil {
		return err
	}

	// webrtc.ConfigureTWCCSenderWithOptions
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return err
		}
	}
	tw, err := twcc.NewSenderInterceptor(twccOpts...)
	if err != nil {
		return err
	}
	ir.Add(lazyLoopFactory{inner: tw, extURI: sdp.TransportCCURI})
	return nil
}

// lazyLoop holds back an interceptor whose goroutine serves only some
// remote streams (pion's NACK generator: those with NACK feedback; its
// TWCC sender: packets with the transport-wide sequence number) until the
// first packet it would process arrives: then it gets the RTCP writer
// (which starts its goroutine) and the stream, and sees every later packet.
// It relies on both returning the RTCP writer they are given unchanged, as
// they do (pion/interceptor v0.1.51).
type lazyLoopFactory struct {
	inner interceptor.Factory
	// extURI, if set, is the header extension a packet must carry to
	// start the interceptor; otherwise any packet of a stream with NACK
	// feedback does.
	extURI string
}

// NewInterceptor implements interceptor.Factory.
func (f lazyLoopFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	in, err := f.inner.NewInterceptor(id)
	if err != nil {
		return nil, err
	}
	return &lazyLoop{inner: in, extURI: f.extURI}, nil
}

type lazyLoop struct {
	inner  interceptor.Interceptor
	extURI string

	mu      sync.Mutex
	writer  interceptor.RTCPWriter
	started bool
}

// start gives the inner interceptor its RTCP writer, once.
func (l *lazyLoop) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started && l.writer != nil {
		l.started = true
		l.inner.BindRTCPWriter(l.writer)
	}
}

// BindRTCPWriter keeps the writer for start.
func (l *lazyLoop) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	l.mu.Lock()
	l.writer = w
	l.mu.Unlock()
	return w
}

// BindRemoteStream hands the stream to the inner interceptor at its first
// packet that matters.
func (l *lazyLoop) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	var extID uint8
	switch {
	case l.extURI == "":
		if !hasNACK(info) {
			return l.inner.BindRemoteStream(info, reader)
		}
	default:
		for _, e := range info.RTPHeaderExtensions {
			if e.URI == l.extURI {
				extID = uint8(e.ID) // #nosec G115: IDs are 1–255 (RFC 8285)
			}
		}
		if extID == 0 {
			return l.inner.BindRemoteStream(info, reader)
		}
	}
	var bound atomic.Pointer[interceptor.RTPReader]
	// The stream's reader (one goroutine) owns these.
	var h rtp.Header // reused: Unmarshal allocates nothing once it has capacity
	seen := 0
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		if r := bound.Load(); r != nil {
			return (*r).Read(b, a)
		}
		n, a, err := reader.Read(b, a)
		if err != nil || seen > lazyGiveUp {
			return n, a, err
		}
		if extID != 0 {
			seen++
			if seen > lazyGiveUp {
				// A sender that numbers packets for transport-wide
				// feedback does so from its first packet (Chrome does);
				// this one does not (pion does not), so stop looking.
				return n, a, nil
			}
			// No header extension at all (RFC 3550 §5.1, the X bit): not
			// worth parsing the header.
			if n == 0 || b[0]&0x10 == 0 {
				return n, a, nil
			}
			if _, err := h.Unmarshal(b[:n]); err != nil || h.GetExtension(extID) == nil {
				return n, a, nil
			}
		}
		l.start()
		r := l.inner.BindRemoteStream(info, reader)
		bound.Store(&r)
		return n, a, nil
	})
}

// lazyGiveUp is how many packets of a stream lazyLoop looks at for a
// header extension before it decides the sender does not use it.
const lazyGiveUp = 256

func hasNACK(info *interceptor.StreamInfo) bool {
	for _, fb := range info.RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			return true
		}
	}
	return false
}

// The rest goes to the inner interceptor as it is.

// BindRTCPReader implements interceptor.Interceptor.
func (l *lazyLoop) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return l.inner.BindRTCPReader(r)
}

// BindLocalStream implements interceptor.Interceptor.
func (l *lazyLoop) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return l.inner.BindLocalStream(info, w)
}

// UnbindLocalStream implements interceptor.Interceptor.
func (l *lazyLoop) UnbindLocalStream(info *interceptor.StreamInfo) { l.inner.UnbindLocalStream(info) }

// UnbindRemoteStream implements interceptor.Interceptor.
func (l *lazyLoop) UnbindRemoteStream(info *interceptor.StreamInfo) { l.inner.UnbindRemoteStream(info) }

// Close implements interceptor.Interceptor: the inner interceptor stops
// its goroutine, or never starts it (it checks for Close in BindRTCPWriter).
func (l *lazyLoop) Close() error { return l.inner.Close() }

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
