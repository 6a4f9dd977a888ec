package smpcall

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/stats"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
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

// DTLS and ICE timing (see newPionShared).
const (
	dtlsRetransmit        = 250 * time.Millisecond
	dtlsDeadline          = time.Minute
	iceMaxBindingRequests = 50
)

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
	var se webrtc.SettingEngine
	if cfg.SettingEngine != nil {
		se = *cfg.SettingEngine
	}
	if err := registerInterceptors(m, ir, &se, cfg.Logger); err != nil {
		return nil, err
	}
	// A silent path counts as interrupted after pathTimeout; ICE gives up
	// (deleting its candidates) only when the reconnection budget is spent.
	se.SetICETimeouts(pathTimeout, max(cfg.ReconnectBudget, pathTimeout), keepalive)
	// pion resends a lost DTLS flight after 1 s, doubling up to 60 s, with
	// no deadline: at 20 % loss a handshake took up to 4 minutes
	// (internal/netsim measurements). 250 ms brought a 5 %-loss WAN call's
	// p99 setup from 4.5 s to 1.5 s; the deadline (the connect timeout, or
	// a minute without one) makes a hopeless handshake fail instead of
	// running on after the call ended.
	se.SetDTLSRetransmissionInterval(dtlsRetransmit)
	deadline := dtlsDeadline
	if cfg.ConnectTimeout > 0 {
		deadline = cfg.ConnectTimeout // the call ends then anyway
	}
	se.SetDTLSConnectContextMaker(func() (context.Context, func()) {
		return context.WithTimeout(context.Background(), deadline)
	})
	// pion pings a candidate pair every 200 ms and fails it after 7
	// unanswered pings: on a 500 ms RTT path with bursts of loss every pair
	// could fail within seconds, and pion never tries a failed pair again,
	// so the call could not connect at all (seen on the sat profile of
	// TestSetupAgainstRawPion). 50 pings give a pair 10 s. 20 (4 s) were
	// not enough: on that profile the answers to the first checks came
	// after 6 s, behind the TURN allocations in the 300 kbit/s queue, and
	// one seed did not connect in 6 of 80 runs; with 50, in 0 of 600. A
	// pair that is really dead costs 50 small packets.
	se.SetICEMaxBindingRequests(iceMaxBindingRequests)
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
// order), with the SDK's options, and with the interceptors that keep
// state per stream or run a goroutine per peer connection wrapped in
// lazyBind, so that they start with the first packet that concerns them.
//
// A SimpleX session has four m-lines and most calls send on one or two
// (protocol §6.4), so pion bound every interceptor to eight streams of
// which most never carry a packet: the NACK responder kept a resend buffer
// for each idle video sender, the report interceptor sent a receiver
// report every second about each remote stream that never sent (RFC 3550
// §6.4.2 reports only on sources heard from; Chrome does so), each a UDP
// packet to encrypt, send, receive and decrypt, and the NACK generator
// (every 20 ms) and the transport-wide feedback (every 100 ms) woke for
// the call's whole life although an audio call between SDK peers needs
// neither. The stats interceptor is made with the peer connection and
// binds remote streams at once (it counts a stream's first packet only
// when bound before it, and the SDK reports inbound statistics); only its
// recorders for local streams wait for a packet.
func registerInterceptors(m *webrtc.MediaEngine, ir *interceptor.Registry, se *webrtc.SettingEngine, log *slog.Logger) error {
	var lf logging.LoggerFactory
	if se.LoggerFactory == nil {
		// pion logs into Config.Logger (pion's own default writes to the
		// process's stderr, which is not an SDK's to use), one logger per
		// scope for every call instead of a set per peer connection and
		// interceptor (13 KiB a call).
		lf = &loggerCache{f: slogFactory{log}, m: map[string]logging.LeveledLogger{}}
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
	if err := addLazy(ir, lazyBindFactory{inner: responder, local: hasNACK, rtcp: true}); err != nil {
		return err
	}
	if err := addLazy(ir, lazyBindFactory{inner: generator, remote: remoteNACK}); err != nil {
		return err
	}

	// webrtc.ConfigureRTCPReportsWithOptions
	receiver, err := report.NewReceiverInterceptor(recvOpts...)
	if err != nil {
		return err
	}
	sender, err := report.NewSenderInterceptor(sendOpts...)
	if err != nil {
		return err
	}
	if err := addLazy(ir, lazyBindFactory{inner: receiver, remote: remoteAll, rtcp: true}); err != nil {
		return err
	}
	if err := addLazy(ir, lazyBindFactory{inner: sender, local: allStreams}); err != nil {
		return err
	}

	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return err
	}
	statsReg := &interceptor.Registry{}
	if err := webrtc.ConfigureStatsInterceptorWithOptions(statsReg, statsOpts...); err != nil {
		return err
	}
	if err := addLazy(ir, lazyBindFactory{inner: registryFactory{statsReg}, eager: true, local: allStreams}); err != nil {
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
	return addLazy(ir, lazyBindFactory{inner: tw, remote: remoteWithExtension(sdp.TransportCCURI)})
}

func addLazy(ir *interceptor.Registry, f lazyBindFactory) error {
	if err := f.check(); err != nil {
		return err
	}
	ir.Add(f)
	return nil
}

// A remoteRule says whether lazyBind holds back a remote stream, and
// which header extension (its ID, 0: none) a packet must carry to bind it.
type remoteRule func(*interceptor.StreamInfo) (lazy bool, extID uint8)

func remoteAll(*interceptor.StreamInfo) (bool, uint8) { return true, 0 }

// remoteNACK holds back the streams with NACK feedback (pion's generator
// ignores the others).
func remoteNACK(info *interceptor.StreamInfo) (bool, uint8) { return hasNACK(info), 0 }

// hasNACK reports whether a stream negotiated NACK feedback (RFC 4585
// §4.2), the streams pion's NACK interceptors handle.
func hasNACK(info *interceptor.StreamInfo) bool {
	for _, fb := range info.RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			return true
		}
	}
	return false
}

func allStreams(*interceptor.StreamInfo) bool { return true }

// remoteWithExtension holds back the streams that negotiated the header
// extension until a packet carries it (pion's TWCC sender ignores the
// others).
func remoteWithExtension(uri string) remoteRule {
	return func(info *interceptor.StreamInfo) (bool, uint8) {
		for _, e := range info.RTPHeaderExtensions {
			if e.URI == uri && e.ID > 0 && e.ID < 256 {
				return true, uint8(e.ID)
			}
		}
		return false, 0
	}
}

// lazyBindFactory wraps an interceptor so that it exists only once a
// stream it concerns has a packet (remote: the first read; local: the
// first write): then it is made, gets the RTCP writer (which starts its
// goroutine) and the stream. The first packet is handed to it too, so it
// sees exactly what it would have seen bound from the start. It relies on
// the interceptor returning the RTCP writer it is given unchanged, and on
// ignoring the streams the rules pass over, as pion's NACK, report and
// TWCC interceptors do (pion/interceptor v0.1.51); see eager for the stats
// interceptor. Before it exists, RTCP read on a sender or receiver goes
// past it: it concerns no stream it knows.
//
// The per peer connection part of an interceptor is worth holding back
// too: pion's NACK responder keeps 8 KiB of retransmission-rate buckets
// whether or not a video stream ever sends.
type lazyBindFactory struct {
	inner interceptor.Factory
	// local and remote say which streams to bind at their first packet
	// (nil: none). The others are not bound, or, with eager, at once.
	local  func(*interceptor.StreamInfo) bool
	remote remoteRule
	// rtcp: the interceptor reads RTCP (pion's NACK responder and report
	// receiver do); others' BindRTCPReader is not called.
	rtcp bool
	// eager makes the interceptor with the peer connection and hands it
	// the RTCP writer and reader and the streams the rules pass over at
	// once: only the streams the rules pick wait for a packet. For pion's
	// stats interceptor, which wraps the RTCP writer and keeps a recorder
	// per stream: the local streams that never send (the idle m-lines)
	// then have none. (Its recorder starts on a goroutine of its own, so
	// the first packet of a stream bound at that packet may go uncounted:
	// only outbound statistics, which the SDK does not report.)
	eager bool
}

// NewInterceptor implements interceptor.Factory.
func (f lazyBindFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	l := &lazyBind{f: f, id: id}
	if f.eager {
		in, err := f.inner.NewInterceptor(id)
		if err != nil {
			return nil, err
		}
		l.inner = in
		l.made.Store(&in)
	}
	return l, nil
}

// registryFactory makes the interceptors of a registry as one; it lets
// lazyBind wrap an interceptor that webrtc registers itself (the stats
// interceptor, whose per peer connection getter GetStats looks up).
type registryFactory struct{ r *interceptor.Registry }

// NewInterceptor implements interceptor.Factory.
func (f registryFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	return f.r.Build(id)
}

// check makes one interceptor, so that bad options fail when the
// registry is built rather than at a call's first packet.
func (f lazyBindFactory) check() error {
	in, err := f.inner.NewInterceptor("")
	if err != nil {
		return err
	}
	return in.Close()
}

type lazyBind struct {
	f  lazyBindFactory
	id string

	mu     sync.Mutex
	inner  interceptor.Interceptor // nil until a stream needs it
	writer interceptor.RTCPWriter
	closed bool
	made   atomic.Pointer[interceptor.Interceptor]
}

// get makes the inner interceptor, once; nil after Close.
func (l *lazyBind) get() interceptor.Interceptor {
	if in := l.made.Load(); in != nil {
		return *in
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inner == nil && !l.closed {
		in, err := l.f.inner.NewInterceptor(l.id)
		if err != nil {
			return nil // check saw the same options succeed
		}
		if l.writer != nil {
			in.BindRTCPWriter(l.writer)
		}
		l.inner = in
		l.made.Store(&in)
	}
	return l.inner
}

// BindRTCPWriter keeps the writer for get.
func (l *lazyBind) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	if l.f.eager {
		return l.inner.BindRTCPWriter(w)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writer = w
	if l.inner != nil {
		l.inner.BindRTCPWriter(w)
	}
	return w
}

// BindRTCPReader reads past the interceptor until it exists, then
// through it.
func (l *lazyBind) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	if l.f.eager {
		return l.inner.BindRTCPReader(r)
	}
	if !l.f.rtcp {
		return r
	}
	return &lazyRTCPReader{l: l, r: r}
}

type lazyRTCPReader struct {
	l       *lazyBind
	r       interceptor.RTCPReader
	mu      sync.Mutex
	through atomic.Pointer[interceptor.RTCPReader]
}

func (lr *lazyRTCPReader) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	if t := lr.through.Load(); t != nil {
		return (*t).Read(b, a)
	}
	in := lr.l.made.Load()
	if in == nil {
		return lr.r.Read(b, a)
	}
	lr.mu.Lock()
	if lr.through.Load() == nil {
		t := (*in).BindRTCPReader(lr.r)
		lr.through.Store(&t)
	}
	lr.mu.Unlock()
	return (*lr.through.Load()).Read(b, a)
}

// lazyGiveUp is how many packets of a stream lazyBind looks at for a
// header extension before it decides the sender does not use it.
const lazyGiveUp = 256

// BindRemoteStream binds the stream at its first packet that matters.
func (l *lazyBind) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	lazy, extID := false, uint8(0)
	if l.f.remote != nil {
		lazy, extID = l.f.remote(info)
	}
	if !lazy {
		if l.f.eager {
			return l.inner.BindRemoteStream(info, reader)
		}
		return reader // the interceptor would pass it through as it is
	}
	return &lazyRemote{l: l, info: info, reader: reader, extID: extID}
}

// lazyRemote is a remote stream's reader until the interceptor is bound
// to it. One goroutine reads a stream.
type lazyRemote struct {
	l      *lazyBind
	info   *interceptor.StreamInfo
	reader interceptor.RTPReader
	extID  uint8
	h      *rtp.Header // reused: Unmarshal allocates nothing once it has capacity
	seen   int
	bound  interceptor.RTPReader
	// first is the packet that bound the stream, which the interceptor
	// reads again.
	first     []byte
	firstAttr interceptor.Attributes
}

func (s *lazyRemote) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	if s.bound != nil {
		return s.bound.Read(b, a)
	}
	n, a, err := s.reader.Read(b, a)
	if err != nil || s.seen > lazyGiveUp {
		return n, a, err
	}
	if s.extID != 0 {
		s.seen++
		if s.seen > lazyGiveUp {
			// A sender that numbers packets for transport-wide feedback
			// does so from its first packet (Chrome does); this one does
			// not (pion does not), so stop looking.
			return n, a, nil
		}
		// No header extension at all (RFC 3550 §5.1, the X bit): not worth
		// parsing the header.
		if n == 0 || b[0]&0x10 == 0 {
			return n, a, nil
		}
		if s.h == nil {
			s.h = &rtp.Header{}
		}
		if _, err := s.h.Unmarshal(b[:n]); err != nil || s.h.GetExtension(s.extID) == nil {
			return n, a, nil
		}
	}
	in := s.l.get()
	if in == nil {
		return n, a, nil // closed
	}
	s.first, s.firstAttr = b[:n], a
	s.bound = in.BindRemoteStream(s.info, interceptor.RTPReaderFunc(s.replay))
	s.h = nil
	return s.bound.Read(b, a)
}

// replay is what the interceptor reads from: the packet that bound the
// stream, then the stream.
func (s *lazyRemote) replay(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	if s.first != nil {
		n, a := copy(b, s.first), s.firstAttr
		s.first, s.firstAttr = nil, nil
		return n, a, nil
	}
	return s.reader.Read(b, a)
}

// BindLocalStream binds the stream at its first packet, if local.
func (l *lazyBind) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if l.f.local == nil || !l.f.local(info) {
		if l.f.eager {
			return l.inner.BindLocalStream(info, w)
		}
		return w // the interceptor would pass it through as it is
	}
	var mu sync.Mutex
	var bound atomic.Pointer[interceptor.RTPWriter]
	return interceptor.RTPWriterFunc(func(header *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if bw := bound.Load(); bw != nil {
			return (*bw).Write(header, payload, a)
		}
		mu.Lock()
		if bound.Load() == nil {
			bw := w
			if in := l.get(); in != nil {
				bw = in.BindLocalStream(info, w)
			}
			bound.Store(&bw)
		}
		mu.Unlock()
		return (*bound.Load()).Write(header, payload, a)
	})
}

// UnbindLocalStream implements interceptor.Interceptor.
func (l *lazyBind) UnbindLocalStream(info *interceptor.StreamInfo) {
	if in := l.made.Load(); in != nil {
		(*in).UnbindLocalStream(info)
	}
}

// UnbindRemoteStream implements interceptor.Interceptor.
func (l *lazyBind) UnbindRemoteStream(info *interceptor.StreamInfo) {
	if in := l.made.Load(); in != nil {
		(*in).UnbindRemoteStream(info)
	}
}

// Close closes the interceptor if it was made; none is made after.
func (l *lazyBind) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.inner != nil {
		return l.inner.Close()
	}
	return nil
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

// slogFactory makes pion loggers that write to a slog.Logger, one level
// lower than pion's (pion's info to slog's debug, its warnings to info,
// its errors to warn; its trace and debug below debug): pion reports at
// info and warn what is routine for a call (state changes, a candidate
// that does not pair), and the SDK reports what matters in its own words.
type slogFactory struct{ log *slog.Logger }

// NewLogger implements logging.LoggerFactory.
func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLogger{f.log.With("pion", scope)}
}

type slogLogger struct{ log *slog.Logger }

func (l slogLogger) logf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l slogLogger) Trace(msg string)                  { l.logf(slog.LevelDebug-4, "%s", msg) }
func (l slogLogger) Tracef(format string, args ...any) { l.logf(slog.LevelDebug-4, format, args...) }
func (l slogLogger) Debug(msg string)                  { l.logf(slog.LevelDebug, "%s", msg) }
func (l slogLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l slogLogger) Info(msg string)                   { l.logf(slog.LevelInfo, "%s", msg) }
func (l slogLogger) Infof(format string, args ...any)  { l.logf(slog.LevelInfo, format, args...) }
func (l slogLogger) Warn(msg string)                   { l.logf(slog.LevelWarn, "%s", msg) }
func (l slogLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args...) }
func (l slogLogger) Error(msg string)                  { l.logf(slog.LevelError, "%s", msg) }
func (l slogLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }
