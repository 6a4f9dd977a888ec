package netsim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// RawOptions configures RawCall. The zero value measures call setup only.
type RawOptions struct {
	// RelayOnly sets webrtc.ICETransportPolicyRelay on both sides.
	RelayOnly bool
	// STUNOnly gives the sides only the server's STUN URL, no TURN: no
	// relay candidates, to see what host and server-reflexive candidates
	// achieve on their own.
	STUNOnly bool
	// Configure, if set, is called with each side's SettingEngine before its
	// PeerConnection is made, e.g. to set acceptance waits or timeouts.
	Configure func(s Side, se *webrtc.SettingEngine)
	// Media is how long to send frames once both sides are connected; 0
	// sends nothing. The first frames go out at once, so Media/20ms audio
	// frames and Media×VideoFPS video frames are sent.
	Media time.Duration
	// Audio sends one Opus-sized frame (AudioFrameSize bytes, default 120,
	// one RTP packet) every 20 ms.
	Audio          bool
	AudioFrameSize int
	// VideoFrameSize, if > 0, sends VP8 frames of that many bytes (split by
	// pion's VP8 payloader into packets of at most 1200 bytes) at VideoFPS
	// (default 30).
	VideoFrameSize int
	VideoFPS       int
	// BothWays makes B send the same media as A; otherwise only A sends.
	BothWays bool
	// Drain is how long to wait after the last frame before counting;
	// default 1 s.
	Drain time.Duration
}

// RawResult is what RawCall measured. Durations count from the moment A
// started to create its offer.
type RawResult struct {
	// Answered is when A had applied B's answer.
	Answered time.Duration
	// ICEConnected is when both ICE transports were connected.
	ICEConnected time.Duration
	// Setup is when both PeerConnections were connected (ICE and DTLS).
	Setup time.Duration
	// Pair is each side's (indexed by Side) selected candidate pair,
	// "local→remote" by candidate type, e.g. "srflx→relay".
	Pair [2]string
	// Media counts, per sending side (indexed by Side), the frames sent and
	// the frames the other side received complete (after NACK
	// retransmissions).
	Media [2]MediaCount
}

// MediaCount counts the frames one side sent and the other received.
type MediaCount struct {
	AudioSent, AudioReceived int
	VideoSent, VideoReceived int
}

// RawCall runs a call between two plain pion PeerConnections on n — pion's
// default codecs and interceptors, pion's default ICE and DTLS settings
// except for the simulated network (Net.SettingEngine), a silent logger
// and opts.Configure — as the baseline the SDK's calls are compared with. A
// offers (and so is the ICE-controlling agent), B answers; both offer an
// audio and a video track, like the SDK. Signaling is in-process and
// instantaneous; candidates are trickled (each candidate is added to the
// other side as soon as pion reports it and the other side has the remote
// description), as the SDK does.
//
// After the call is connected it optionally sends media for opts.Media,
// waits opts.Drain, counts what arrived and closes both PeerConnections.
// It returns an error if ctx ends before the call connects or if a side's
// connection fails.
func RawCall(ctx context.Context, n *Net, opts RawOptions) (*RawResult, error) {
	if opts.AudioFrameSize <= 0 {
		opts.AudioFrameSize = 120
	}
	if opts.VideoFPS <= 0 {
		opts.VideoFPS = 30
	}
	if opts.Drain <= 0 {
		opts.Drain = time.Second
	}
	rp, res, err := connectRaw(ctx, n, opts)
	if err != nil {
		return nil, err
	}
	defer rp.close()
	// Closing a PeerConnection in the instant it connects can deadlock
	// pion/webrtc v4.2.26: when DTLS completes, the operation applying the
	// description still has to start SRTP and the RTCP stream acceptor
	// (PeerConnection.startRTP → DTLSTransport.wantSRTP, which takes the
	// transport's lock); if Close gets the lock first (DTLSTransport.Stop),
	// it waits for the SRTCP session's read loop, which is blocked handing
	// the peer's first RTCP packet to the acceptor that never starts. Give
	// pion a moment to finish applying the description.
	time.Sleep(settle)
	if opts.Media > 0 && (opts.Audio || opts.VideoFrameSize > 0) {
		senders := []*rawPeer{rp.peers[A]}
		if opts.BothWays {
			senders = append(senders, rp.peers[B])
		}
		if err := sendMedia(ctx, senders, opts); err != nil {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(opts.Drain):
		}
		for i, p := range rp.peers {
			res.Media[i].AudioSent, res.Media[i].VideoSent = p.sent()
			res.Media[i].AudioReceived, res.Media[i].VideoReceived = p.other.received()
		}
	}
	return res, nil
}

// settle is how long RawCall lets pion finish its own work after the call
// connects, before it sends media or closes (see RawCall).
const settle = 100 * time.Millisecond

// rawPair is the two connected PeerConnections of RawCall.
type rawPair struct {
	peers [2]*rawPeer
}

func (rp *rawPair) close() {
	for _, p := range rp.peers {
		if p != nil {
			p.close()
		}
	}
}

// connectRaw makes both PeerConnections, signals and waits until both are
// connected. On error it closes what it made.
func connectRaw(ctx context.Context, n *Net, opts RawOptions) (_ *rawPair, _ *RawResult, err error) {
	rp := &rawPair{}
	defer func() {
		if err != nil {
			rp.close()
		}
	}()
	for _, s := range []Side{A, B} {
		p, err := newRawPeer(n, s, opts)
		if err != nil {
			return nil, nil, err
		}
		rp.peers[s] = p
	}
	a, b := rp.peers[A], rp.peers[B]
	a.other, b.other = b, a

	start := time.Now()
	res := &RawResult{}
	offer, err := a.pc.CreateOffer(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("netsim: offer: %w", err)
	}
	if err := a.pc.SetLocalDescription(offer); err != nil {
		return nil, nil, fmt.Errorf("netsim: offer: %w", err)
	}
	if err := b.setRemote(offer); err != nil {
		return nil, nil, err
	}
	answer, err := b.pc.CreateAnswer(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("netsim: answer: %w", err)
	}
	if err := b.pc.SetLocalDescription(answer); err != nil {
		return nil, nil, fmt.Errorf("netsim: answer: %w", err)
	}
	if err := a.setRemote(answer); err != nil {
		return nil, nil, err
	}
	res.Answered = time.Since(start)

	for _, p := range rp.peers {
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("netsim: side %v not connected after %v: %w", p.side, time.Since(start), ctx.Err())
		case err := <-p.failed:
			return nil, nil, err
		case <-p.connected:
		}
	}
	for i, p := range rp.peers {
		ice, pc := p.times()
		res.ICEConnected = max(res.ICEConnected, ice.Sub(start))
		res.Setup = max(res.Setup, pc.Sub(start))
		res.Pair[i] = p.selectedPair()
	}
	return rp, res, nil
}

// sendMedia sends, from every sender, an audio frame every 20 ms and a
// video frame every 1/VideoFPS, starting now, for opts.Media: exactly
// Media/20ms audio and Media×VideoFPS video frames.
func sendMedia(ctx context.Context, senders []*rawPeer, opts RawOptions) error {
	const audioEvery = 20 * time.Millisecond
	videoEvery := time.Second / time.Duration(opts.VideoFPS)
	audioLeft, videoLeft := 0, 0
	if opts.Audio {
		audioLeft = int(opts.Media / audioEvery)
	}
	if opts.VideoFrameSize > 0 {
		videoLeft = int(opts.Media / videoEvery)
	}
	audio := make([]byte, opts.AudioFrameSize)
	video := make([]byte, opts.VideoFrameSize)
	start := time.Now()
	nextAudio, nextVideo := start, start
	for audioLeft > 0 || videoLeft > 0 {
		next := nextAudio
		if audioLeft == 0 || (videoLeft > 0 && nextVideo.Before(nextAudio)) {
			next = nextVideo
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(next)):
		}
		if audioLeft > 0 && !nextAudio.After(next) {
			for _, p := range senders {
				if err := p.writeAudio(audio); err != nil {
					return err
				}
			}
			audioLeft--
			nextAudio = nextAudio.Add(audioEvery)
		}
		if videoLeft > 0 && !nextVideo.After(next) {
			for _, p := range senders {
				if err := p.writeVideo(video, videoEvery); err != nil {
					return err
				}
			}
			videoLeft--
			nextVideo = nextVideo.Add(videoEvery)
		}
	}
	return nil
}

// rawPeer is one side of RawCall.
type rawPeer struct {
	side       Side
	pc         *webrtc.PeerConnection
	audio      *webrtc.TrackLocalStaticSample
	video      *webrtc.TrackLocalStaticSample
	other      *rawPeer
	videoSize  int
	connected  chan struct{}
	failed     chan error
	wg         sync.WaitGroup
	closeOnce  sync.Once
	mu         sync.Mutex
	remoteSet  bool
	pending    []webrtc.ICECandidateInit
	iceAt      time.Time
	pcAt       time.Time
	audioSent  int
	videoSent  int
	audioSeqs  map[uint16]struct{}
	videoAcc   map[uint32]*frameAcc
	videoGot   int
	connOnce   sync.Once
	failedOnce sync.Once
}

// frameAcc collects one received VP8 frame (one RTP timestamp).
type frameAcc struct {
	seqs  map[uint16]struct{}
	bytes int
	done  bool
}

func newRawPeer(n *Net, s Side, opts RawOptions) (*rawPeer, error) {
	se := n.SettingEngine(s)
	se.LoggerFactory = quietLogs
	if opts.Configure != nil {
		opts.Configure(s, se)
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(*se))
	cfg := webrtc.Configuration{ICEServers: n.ICEServers(s)}
	if opts.STUNOnly {
		for i := range cfg.ICEServers {
			cfg.ICEServers[i].URLs = cfg.ICEServers[i].URLs[:1]
		}
	}
	if opts.RelayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("netsim: side %v: %w", s, err)
	}
	p := &rawPeer{
		side: s, pc: pc, videoSize: opts.VideoFrameSize,
		connected: make(chan struct{}), failed: make(chan error, 1),
		audioSeqs: map[uint16]struct{}{}, videoAcc: map[uint32]*frameAcc{},
	}
	if p.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "raw-"+s.String()); err != nil {
		p.close()
		return nil, err
	}
	if p.video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "raw-"+s.String()); err != nil {
		p.close()
		return nil, err
	}
	for _, tr := range []webrtc.TrackLocal{p.audio, p.video} {
		sender, err := pc.AddTrack(tr)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("netsim: side %v: %w", s, err)
		}
		// Reading RTCP runs the interceptors (NACK responder, reports).
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.readTrack(tr)
		}()
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			p.other.addRemoteCandidate(c.ToJSON())
		}
	})
	pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
		if st == webrtc.ICEConnectionStateConnected {
			p.mu.Lock()
			if p.iceAt.IsZero() {
				p.iceAt = time.Now()
			}
			p.mu.Unlock()
		}
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			p.mu.Lock()
			if p.pcAt.IsZero() {
				p.pcAt = time.Now()
			}
			p.mu.Unlock()
			p.connOnce.Do(func() { close(p.connected) })
		case webrtc.PeerConnectionStateFailed:
			p.fail(fmt.Errorf("netsim: side %v: connection failed", s))
		}
	})
	return p, nil
}

func (p *rawPeer) fail(err error) {
	p.failedOnce.Do(func() { p.failed <- err })
}

// setRemote applies the remote description and then the candidates that
// arrived before it.
func (p *rawPeer) setRemote(sd webrtc.SessionDescription) error {
	if err := p.pc.SetRemoteDescription(sd); err != nil {
		return fmt.Errorf("netsim: side %v: remote %v: %w", p.side, sd.Type, err)
	}
	p.mu.Lock()
	p.remoteSet = true
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, c := range pending {
		p.addCandidate(c)
	}
	return nil
}

func (p *rawPeer) addRemoteCandidate(c webrtc.ICECandidateInit) {
	p.mu.Lock()
	if !p.remoteSet {
		p.pending = append(p.pending, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.addCandidate(c)
}

func (p *rawPeer) addCandidate(c webrtc.ICECandidateInit) {
	if err := p.pc.AddICECandidate(c); err != nil {
		p.fail(fmt.Errorf("netsim: side %v: add candidate: %w", p.side, err))
	}
}

func (p *rawPeer) times() (ice, pc time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.iceAt.IsZero() { // pion reported PC connected first
		p.iceAt = p.pcAt
	}
	return p.iceAt, p.pcAt
}

func (p *rawPeer) selectedPair() string {
	for _, s := range p.pc.GetSenders() {
		if s.Transport() == nil {
			continue
		}
		pair, err := s.Transport().ICETransport().GetSelectedCandidatePair()
		if err == nil && pair != nil {
			return pair.Local.Typ.String() + "→" + pair.Remote.Typ.String()
		}
	}
	return ""
}

func (p *rawPeer) writeAudio(frame []byte) error {
	if err := p.audio.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond}); err != nil {
		return fmt.Errorf("netsim: side %v: audio: %w", p.side, err)
	}
	p.mu.Lock()
	p.audioSent++
	p.mu.Unlock()
	return nil
}

func (p *rawPeer) writeVideo(frame []byte, d time.Duration) error {
	if err := p.video.WriteSample(media.Sample{Data: frame, Duration: d}); err != nil {
		return fmt.Errorf("netsim: side %v: video: %w", p.side, err)
	}
	p.mu.Lock()
	p.videoSent++
	p.mu.Unlock()
	return nil
}

func (p *rawPeer) sent() (audio, video int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.audioSent, p.videoSent
}

func (p *rawPeer) received() (audio, video int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.audioSeqs), p.videoGot
}

// readTrack counts what arrives on a remote track: distinct RTP packets for
// audio, complete frames for video (every payload byte of the frame seen,
// retransmitted packets counted once).
func (p *rawPeer) readTrack(tr *webrtc.TrackRemote) {
	isVideo := tr.Kind() == webrtc.RTPCodecTypeVideo
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		p.mu.Lock()
		if !isVideo {
			p.audioSeqs[pkt.SequenceNumber] = struct{}{}
			p.mu.Unlock()
			continue
		}
		var vp8 codecs.VP8Packet
		payload, err := vp8.Unmarshal(pkt.Payload)
		if err == nil && p.other.videoSize > 0 {
			f := p.videoAcc[pkt.Timestamp]
			if f == nil {
				f = &frameAcc{seqs: map[uint16]struct{}{}}
				p.videoAcc[pkt.Timestamp] = f
			}
			if _, dup := f.seqs[pkt.SequenceNumber]; !dup && !f.done {
				f.seqs[pkt.SequenceNumber] = struct{}{}
				f.bytes += len(payload)
				if f.bytes == p.other.videoSize {
					f.done = true
					p.videoGot++
				}
			}
		}
		p.mu.Unlock()
	}
}

// close closes the PeerConnection and waits for pion's goroutines: plain
// Close returns at once when the peer's DTLS close_notify already made
// pion start closing in a goroutine of its own (PeerConnection's
// internalOnCloseHandler), and that goroutine would outlive the call.
func (p *rawPeer) close() {
	p.closeOnce.Do(func() {
		err := p.pc.GracefulClose()
		p.wg.Wait()
		if err != nil {
			p.fail(err)
		}
	})
}
