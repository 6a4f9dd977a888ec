package smpcall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/eventq"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/internal/jsonfield"
	"github.com/smpcall/smpcall/internal/rtcpayload"
	"github.com/smpcall/smpcall/video"
)

// Errors of the high-level call path.
var (
	// ErrUnencrypted: the call would run without frame encryption and
	// Config.AllowUnencrypted is false (protocol §5.1).
	ErrUnencrypted = errors.New("smpcall: call would not be frame-encrypted (Config.AllowUnencrypted is false)")
	// ErrConnectTimeout: the call did not connect within Config.ConnectTimeout.
	ErrConnectTimeout = errors.New("smpcall: call did not connect in time")
	// ErrConnectionFailed: the WebRTC connection failed.
	ErrConnectionFailed = errors.New("smpcall: WebRTC connection failed")
	// ErrCallEnded is returned by Call methods once the call is over.
	ErrCallEnded = errors.New("smpcall: call ended")
)

// More end reasons of the high-level path.
const (
	ReasonUnencrypted      EndReason = "would not be frame-encrypted"
	ReasonConnectTimeout   EndReason = "connect timeout"
	ReasonConnectionFailed EndReason = "connection failed"
	ReasonError            EndReason = "error"
)

// MessageOverhead bounds what the chat message envelope adds around a
// signaling payload ({"v","msgId","event","params":{"callId",…}} and the
// callDhPubKey the core inserts into an offer). Package smp's tests check
// it against the real encoder.
const MessageOverhead = 256

// Codec settings that Chrome and the SimpleX page accept without SDP
// surgery (DESIGN.md, "Verified against the real SimpleX call page").
const (
	opusPayloadType = 111
	vp8PayloadType  = 96
)

// Sources are what this side sends, by CallMediaSource. Nil sources send
// nothing on that stream (the m-line still has an idle sender, so SimpleX
// peers treat us as a current client).
type Sources struct {
	Mic         audio.Source
	Camera      video.Source
	ScreenAudio audio.Source
	ScreenVideo video.Source
}

// Sinks receive what the peer sends, decrypted, by the peer's CallMediaSource.
type Sinks struct {
	Mic         audio.Sink
	Camera      video.Sink
	ScreenAudio audio.Sink
	ScreenVideo video.Sink
}

// CallOptions configure one call of the high-level path.
type CallOptions struct {
	// Media of a placed call: MediaAudio or MediaVideo (default video).
	// AcceptCall ignores it and uses the invitation's media.
	Media   CallMediaType
	Sources Sources
	Sinks   Sinks
}

// CallConnectedEvent: a call's WebRTC connection is up and media flows.
type CallConnectedEvent struct {
	Contact Contact
	Info    ConnectionInfo
	// Encrypted is true when frames are end-to-end encrypted with the shared key.
	Encrypted bool
}

// DecryptFailingEvent: frames of one stream keep failing to decrypt (wrong
// key, or a peer that does not encrypt); they are dropped and counted.
type DecryptFailingEvent struct {
	Contact Contact
	Source  CallMediaSource
	// Failed is the number of consecutive failures so far.
	Failed int
}

// MediaErrorEvent: a Source or Sink returned an error; that stream stopped.
type MediaErrorEvent struct {
	Contact Contact
	Source  CallMediaSource
	Sending bool
	Err     error
}

func (e *CallConnectedEvent) ContactID() int64  { return e.Contact.ContactID }
func (e *DecryptFailingEvent) ContactID() int64 { return e.Contact.ContactID }
func (e *MediaErrorEvent) ContactID() int64     { return e.Contact.ContactID }
func (*CallConnectedEvent) event()              {}
func (*DecryptFailingEvent) event()             {}
func (*MediaErrorEvent) event()                 {}

// Call is one call of the high-level path: PlaceCall or AcceptCall start it
// and drive its WebRTC session to connected; End hangs up.
//
// Concurrency: all methods are safe for concurrent use. One goroutine owns
// the call's signaling and WebRTC state; media runs in one goroutine per
// stream. End (and the Client's Close) stops them all and waits.
type Call struct {
	c        *Client
	contact  Contact
	incoming bool
	media    CallMediaType
	opts     CallOptions
	log      *slog.Logger

	inbox     *eventq.Queue[any]
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	loopDone  chan struct{}
	connected chan struct{}
	endOnce   sync.Once

	mu        sync.Mutex
	info      ConnectionInfo
	reason    EndReason
	err       error
	encrypted bool
	connAt    time.Time

	// Owned by the call's goroutine.
	pc            *webrtc.PeerConnection
	cipher        *framecrypt.Cipher
	tracks        [4]*webrtc.TrackLocalStaticSample
	localDesc     *webrtc.SessionDescription
	pending       []rtcpayload.Candidate
	remoteQueue   []rtcpayload.Candidate
	remoteSet     bool
	gatherDone    bool
	initialSent   bool
	extrasEnd     time.Time
	initialTimer  *time.Timer
	extrasTicker  *time.Ticker
	connectTimer  *time.Timer
	connectedOnce bool

	// Media goroutines.
	mediaMu     sync.Mutex
	mediaClosed bool
	mediaWG     sync.WaitGroup
	stats       [4]streamCounters
	send        [4]sendStream
	hasStream   atomic.Uint32 // bit i: the session has stream i (set on connected)
	camera      atomic.Value  // VideoCamera as string
	pcRef       atomic.Pointer[webrtc.PeerConnection]
	entry       atomic.Pointer[callEntry] // the Client's record of this call; commands act on it only
	writeErrs   atomic.Uint64
	startedAt   time.Time
	record      atomic.Pointer[CallRecord]
}

// internal messages to the call's goroutine
type (
	candMsg      struct{ c *webrtc.ICECandidate }
	connStateMsg struct{ s webrtc.PeerConnectionState }
	endMsg       struct {
		reason  EndReason
		err     error
		sendEnd bool
	}
)

func (c *Client) newCall(contact Contact, incoming bool, media CallMediaType, opts *CallOptions) *Call {
	k := &Call{c: c, contact: contact, incoming: incoming, media: media,
		log: c.log.With("contact", contact.ContactID), inbox: eventq.New[any](),
		done: make(chan struct{}), loopDone: make(chan struct{}), connected: make(chan struct{})}
	if opts != nil {
		k.opts = *opts
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	k.startedAt = c.cfg.Now()
	k.initStreams()
	return k
}

// Contact returns the peer.
func (k *Call) Contact() Contact { return k.contact }

// Incoming reports whether the peer invited us.
func (k *Call) Incoming() bool { return k.incoming }

// Media returns the call's media type.
func (k *Call) Media() CallMediaType { return k.media }

// State returns the app-level state of the call.
func (k *Call) State() CallState {
	select {
	case <-k.done:
		return StateEnded
	default:
	}
	return k.c.stateOfEntry(k.contact.ContactID, k.entry.Load())
}

// Done is closed when the call has ended and all its goroutines stopped.
func (k *Call) Done() <-chan struct{} { return k.done }

// Connected is closed when the call first connects.
func (k *Call) Connected() <-chan struct{} { return k.connected }

// Reason returns why the call ended, and the error behind it if any;
// ("", nil) while it is in progress.
func (k *Call) Reason() (EndReason, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reason, k.err
}

// Encrypted reports whether media frames are end-to-end encrypted with the
// shared key (known once the call is negotiated).
func (k *Call) Encrypted() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.encrypted
}

// ConnectionInfo returns the selected candidate pair once connected.
func (k *Call) ConnectionInfo() ConnectionInfo {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.info
}

// WaitConnected blocks until the call is connected (returning its
// connection info), ends (returning the reason as an error: ErrUnencrypted,
// ErrConnectTimeout, ErrConnectionFailed, ErrCallEnded…), or ctx ends.
func (k *Call) WaitConnected(ctx context.Context) (ConnectionInfo, error) {
	select {
	case <-k.connected:
		return k.ConnectionInfo(), nil
	case <-k.done:
		select {
		case <-k.connected:
			return k.ConnectionInfo(), nil
		default:
		}
		_, err := k.Reason()
		if err == nil {
			err = ErrCallEnded
		}
		return ConnectionInfo{}, err
	case <-ctx.Done():
		return ConnectionInfo{}, ctx.Err()
	}
}

// End hangs up (sending x.call.end), closes the peer connection and waits
// for the call's goroutines, or for ctx. It may be called more than once and
// after the call ended by itself.
func (k *Call) End(ctx context.Context) error {
	k.inbox.Push(endMsg{reason: ReasonLocalEnd, sendEnd: true})
	select {
	case <-k.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *Call) post(v any) { k.inbox.Push(v) }

// run is the call's goroutine: signaling, WebRTC negotiation, ICE batching
// and timeouts, until the call ends.
func (k *Call) run() {
	defer k.finish()
	if k.incoming {
		if err := k.startOffer(); err != nil {
			k.terminate(reasonFor(err), err, true)
			return
		}
	}
	for {
		select {
		case v := <-k.inbox.C():
			if k.handle(v) {
				return
			}
		case <-timerC(k.initialTimer):
			k.initialTimer = nil
			k.sendInitial()
		case <-tickerC(k.extrasTicker):
			k.flushExtras(time.Now().After(k.extrasEnd))
		case <-timerC(k.connectTimer):
			k.connectTimer = nil
			if !k.connectedOnce {
				k.terminate(ReasonConnectTimeout, ErrConnectTimeout, true)
				return
			}
		}
	}
}

func reasonFor(err error) EndReason {
	if errors.Is(err, ErrUnencrypted) {
		return ReasonUnencrypted
	}
	return ReasonError
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func tickerC(t *time.Ticker) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// handle processes one message; true means the call is over.
func (k *Call) handle(v any) bool {
	switch m := v.(type) {
	case endMsg:
		k.terminate(m.reason, m.err, m.sendEnd)
		return true
	case *CallStateEvent:
		if m.To == StateEnded {
			var err error
			if m.Reason == ReasonTransport {
				err = errors.New("smpcall: transport failed")
			}
			k.terminate(m.Reason, err, false)
			return true
		}
	case *CallOfferEvent:
		if err := k.onOffer(m); err != nil {
			k.terminate(reasonFor(err), err, true)
			return true
		}
	case *CallAnswerEvent:
		if err := k.onAnswer(m); err != nil {
			k.terminate(ReasonError, err, true)
			return true
		}
	case *CallExtraInfoEvent:
		k.onExtra(m)
	case candMsg:
		k.onCandidate(m.c)
	case connStateMsg:
		return k.onConnState(m.s)
	}
	return false
}

// --- peer connection -----------------------------------------------------

func (k *Call) newPeerConnection() error {
	cfg := &k.c.cfg
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb},
		PayloadType:        vp8PayloadType,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        opusPayloadType,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return err
	}
	var se webrtc.SettingEngine
	if cfg.SettingEngine != nil {
		se = *cfg.SettingEngine
	}
	acc := DefaultICEAcceptance
	switch {
	case cfg.ICEAcceptance != nil:
		acc = *cfg.ICEAcceptance
	case cfg.RelayOnly:
		acc = RelayOnlyICEAcceptance
	}
	acc.apply(&se)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	rc := webrtc.Configuration{ICEServers: make([]webrtc.ICEServer, 0, len(cfg.ICEServers))}
	for _, s := range cfg.ICEServers {
		rc.ICEServers = append(rc.ICEServers, s.pion())
	}
	if cfg.RelayOnly {
		rc.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(rc)
	if err != nil {
		return fmt.Errorf("peer connection: %w", err)
	}
	k.pc = pc
	k.pcRef.Store(pc)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { k.post(candMsg{c}) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { k.post(connStateMsg{s}) })
	pc.OnTrack(k.onTrack)
	k.connectTimer = time.NewTimer(cfg.ConnectTimeout)
	return nil
}

func (k *Call) newTrack(i int) (*webrtc.TrackLocalStaticSample, error) {
	src := MediaSources[i]
	capab := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	if isVideo(i) {
		capab = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	}
	t, err := webrtc.NewTrackLocalStaticSample(capab, string(src), "smpcall")
	if err != nil {
		return nil, err
	}
	k.tracks[i] = t
	return t, nil
}

func isVideo(i int) bool { return i == 1 || i == 3 }

// startOffer is the invited party's side (protocol §6.4): exactly four
// transceivers in mid order — mic audio, camera video (even in audio
// calls), screen audio, screen video — each with a sender.
func (k *Call) startOffer() error {
	if err := k.useKey(k.invitationKey()); err != nil {
		return err
	}
	if err := k.newPeerConnection(); err != nil {
		return err
	}
	for i := range MediaSources {
		t, err := k.newTrack(i)
		if err != nil {
			return err
		}
		if _, err := k.pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
			return fmt.Errorf("transceiver %d: %w", i, err)
		}
	}
	k.startRTCPReaders()
	offer, err := k.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := k.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	k.localDesc = &offer
	k.initialTimer = time.NewTimer(k.c.cfg.ICE.InitialDelay)
	return nil
}

func (k *Call) invitationKey() *SharedKey {
	info, ok := k.c.CallInfo(k.contact.ContactID)
	if !ok {
		return nil
	}
	return info.SharedKey
}

// useKey sets up frame encryption, or refuses a call without it unless the
// embedder allowed that.
func (k *Call) useKey(key *SharedKey) error {
	if key == nil {
		if !k.c.cfg.AllowUnencrypted {
			return ErrUnencrypted
		}
		k.log.Warn("smpcall: call is not frame-encrypted (allowed by config)")
		return nil
	}
	ci, err := framecrypt.New(key[:])
	if err != nil {
		return err
	}
	k.cipher = ci
	k.mu.Lock()
	k.encrypted = true
	k.mu.Unlock()
	return nil
}

// onOffer is the inviting party's side: apply the offer, attach a sender to
// every m-line that exists (1, 2 or 4 of them), and answer sendrecv.
func (k *Call) onOffer(ev *CallOfferEvent) error {
	if k.pc != nil {
		return nil // the core never delivers a second offer; be safe
	}
	key := ev.SharedKey
	if ev.AskConfirmation {
		// The peer's offer says it will not encrypt; a key it might still
		// have sent would only make its page drop our frames (protocol §5.1).
		key = nil
	}
	if err := k.useKey(key); err != nil {
		return err
	}
	sess, err := rtcpayload.DecodeSession(ev.Offer.RTCSession)
	if err != nil {
		return err
	}
	if sess.Type != "offer" {
		return fmt.Errorf("rtcSession: expected an offer, got %s", jsonfield.Quote(sess.Type))
	}
	if k.cipher != nil && !videoHasVP8(sess.SDP) {
		return errors.New("offer: video without VP8, which frame encryption requires (protocol §7.3)")
	}
	cands, err := rtcpayload.DecodeCandidates(ev.Offer.RTCIceCandidates)
	if err != nil && !errors.Is(err, rtcpayload.ErrNotCandidateList) {
		return err
	}
	if err := k.newPeerConnection(); err != nil {
		return err
	}
	if err := k.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sess.SDP}); err != nil {
		return fmt.Errorf("apply offer: %w", err)
	}
	k.remoteSet = true
	k.addRemote(cands)
	if err := k.attachAnswerTracks(); err != nil {
		return err
	}
	k.startRTCPReaders()
	answer, err := k.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	if err := k.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	k.localDesc = &answer
	k.initialTimer = time.NewTimer(k.c.cfg.ICE.InitialDelay)
	return nil
}

// attachAnswerTracks puts a sender on every m-line of the offer, by mid
// for current peers ("0"–"3") and by kind for older ones.
func (k *Call) attachAnswerTracks() error {
	audioNext, videoNext := 0, 1
	for _, tr := range k.pc.GetTransceivers() {
		i := midIndex(tr.Mid())
		if i < 0 {
			// Older clients: first audio is the mic, first video the camera.
			if tr.Kind() == webrtc.RTPCodecTypeAudio {
				i, audioNext = audioNext, audioNext+2
			} else {
				i, videoNext = videoNext, videoNext+2
			}
			if i > 3 {
				continue
			}
		}
		if k.tracks[i] != nil || isVideo(i) != (tr.Kind() == webrtc.RTPCodecTypeVideo) {
			continue
		}
		t, err := k.newTrack(i)
		if err != nil {
			return err
		}
		// AddTrack takes the first transceiver of this kind without a sender,
		// which is this one, since we go in m-line order.
		if _, err := k.pc.AddTrack(t); err != nil {
			return fmt.Errorf("attach %s: %w", MediaSources[i], err)
		}
	}
	return nil
}

func midIndex(mid string) int {
	if len(mid) == 1 && mid[0] >= '0' && mid[0] <= '3' {
		return int(mid[0] - '0')
	}
	return -1
}

// videoHasVP8 reports whether every video m-line of sdp offers VP8.
func videoHasVP8(sdp string) bool {
	for _, sec := range strings.Split(sdp, "\nm=")[1:] {
		if strings.HasPrefix(sec, "video") && !strings.Contains(strings.ToUpper(sec), "VP8/90000") {
			return false
		}
	}
	return true
}

func (k *Call) onAnswer(ev *CallAnswerEvent) error {
	if k.pc == nil || k.remoteSet {
		return nil
	}
	sess, err := rtcpayload.DecodeSession(ev.Answer.RTCSession)
	if err != nil {
		return err
	}
	if sess.Type != "answer" {
		return fmt.Errorf("rtcSession: expected an answer, got %s", jsonfield.Quote(sess.Type))
	}
	cands, err := rtcpayload.DecodeCandidates(ev.Answer.RTCIceCandidates)
	if err != nil && !errors.Is(err, rtcpayload.ErrNotCandidateList) {
		return err
	}
	if err := k.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sess.SDP}); err != nil {
		return fmt.Errorf("apply answer: %w", err)
	}
	k.remoteSet = true
	k.addRemote(k.remoteQueue)
	k.remoteQueue = nil
	k.addRemote(cands)
	return nil
}

func (k *Call) onExtra(ev *CallExtraInfoEvent) {
	cands, err := rtcpayload.DecodeCandidates(ev.ExtraInfo.RTCIceCandidates)
	if errors.Is(err, rtcpayload.ErrNotCandidateList) {
		k.log.Info("smpcall: ignoring ICE-restart extra (not supported)")
		return
	}
	if err != nil {
		// Bad candidates do not end a call that may still connect.
		k.log.Warn("smpcall: bad extra candidates", "err", err)
		return
	}
	if !k.remoteSet {
		k.remoteQueue = append(k.remoteQueue, cands...)
		return
	}
	k.addRemote(cands)
}

func (k *Call) addRemote(cands []rtcpayload.Candidate) {
	for _, c := range cands {
		init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
		if err := k.pc.AddICECandidate(init); err != nil {
			k.log.Info("smpcall: remote candidate not usable", "err", err)
		}
	}
}

// --- ICE batching (protocol §6.5) ---------------------------------------

func (k *Call) onCandidate(c *webrtc.ICECandidate) {
	if c == nil {
		k.gatherDone = true
		if !k.initialSent && k.localDesc != nil {
			// Gathering finished before the timer: send now.
			if k.initialTimer != nil {
				k.initialTimer.Stop()
				k.initialTimer = nil
			}
			k.sendInitial()
		} else if k.initialSent {
			k.flushExtras(true)
		}
		return
	}
	ice, err := c.ToICE()
	if err != nil {
		return
	}
	mid, idx := "0", uint16(0)
	k.pending = append(k.pending, rtcpayload.Candidate{Candidate: "candidate:" + ice.Marshal(), SDPMid: &mid, SDPMLineIndex: &idx})
}

// sendInitial sends the offer or answer with as many gathered candidates
// as fit in the message limit; the rest go to extras.
func (k *Call) sendInitial() {
	if k.initialSent || k.localDesc == nil {
		return
	}
	k.initialSent = true
	typ := "answer"
	if k.incoming {
		typ = "offer"
	}
	rtcSession, err := rtcpayload.EncodeSession(rtcpayload.Session{Type: typ, SDP: k.localDesc.SDP})
	if err != nil {
		k.post(endMsg{reason: ReasonError, err: err, sendEnd: true})
		return
	}
	callType := CallType{Media: k.media, Capabilities: CallCapabilities{Encryption: true}}
	n, cands, err := k.fit(k.pending, func(cands string) any {
		s := WebRTCSession{RTCSession: rtcSession, RTCIceCandidates: cands}
		if k.incoming {
			return WebRTCCallOffer{CallType: callType, RTCSession: s}
		}
		return s
	})
	if err != nil {
		k.post(endMsg{reason: ReasonError, err: fmt.Errorf("%s: %w", typ, err), sendEnd: true})
		return
	}
	k.pending = k.pending[n:]
	session := WebRTCSession{RTCSession: rtcSession, RTCIceCandidates: cands}
	ctx, cancel := context.WithTimeout(k.ctx, k.c.cfg.SignalingTimeout)
	defer cancel()
	if k.incoming {
		err = k.c.sendOffer(ctx, k.entry.Load(), k.contact.ContactID, WebRTCCallOffer{CallType: callType, RTCSession: session})
	} else {
		err = k.c.sendAnswer(ctx, k.entry.Load(), k.contact.ContactID, session)
	}
	if err != nil {
		k.post(endMsg{reason: ReasonError, err: err, sendEnd: true})
		return
	}
	k.extrasEnd = time.Now().Add(k.c.cfg.ICE.ExtrasTimeout)
	if k.gatherDone {
		k.flushExtras(true) // only what did not fit
		return
	}
	k.extrasTicker = time.NewTicker(k.c.cfg.ICE.ExtrasInterval)
}

// flushExtras sends pending candidates as extras, each message within the
// size limit; final stops the batching.
func (k *Call) flushExtras(final bool) {
	for len(k.pending) > 0 {
		n, cands, err := k.fit(k.pending, func(cands string) any {
			return WebRTCExtraInfo{RTCIceCandidates: cands}
		})
		if err != nil || n == 0 {
			k.log.Warn("smpcall: candidate too large for a message; dropped", "err", err)
			k.pending = k.pending[1:]
			continue
		}
		ctx, cancel := context.WithTimeout(k.ctx, k.c.cfg.SignalingTimeout)
		err = k.c.sendExtra(ctx, k.entry.Load(), k.contact.ContactID, WebRTCExtraInfo{RTCIceCandidates: cands})
		cancel()
		if err != nil {
			// Keep them for the next flush.
			k.log.Warn("smpcall: sending extra candidates failed", "err", err)
			break
		}
		k.pending = k.pending[n:]
	}
	if final && k.extrasTicker != nil {
		k.extrasTicker.Stop()
		k.extrasTicker = nil
	}
}

// fit returns how many of cands fit, with the payload built by build, into
// one chat message of at most MaxMessageSize bytes, and their encoding.
func (k *Call) fit(cands []rtcpayload.Candidate, build func(string) any) (int, string, error) {
	limit := k.c.cfg.MaxMessageSize
	for n := len(cands); n >= 0; n-- {
		enc, err := rtcpayload.EncodeCandidates(cands[:n])
		if err != nil {
			return 0, "", err
		}
		b, err := jsonfield.Marshal(build(enc))
		if err != nil {
			return 0, "", err
		}
		if len(b)+MessageOverhead <= limit {
			return n, enc, nil
		}
	}
	return 0, "", fmt.Errorf("message exceeds %d bytes even without candidates", limit)
}

// --- connection state ----------------------------------------------------

func (k *Call) onConnState(s webrtc.PeerConnectionState) bool {
	var status WebRTCCallStatus
	switch s {
	case webrtc.PeerConnectionStateConnecting:
		status = StatusConnecting
	case webrtc.PeerConnectionStateConnected:
		status = StatusConnected
	case webrtc.PeerConnectionStateFailed:
		status = StatusFailed
	default:
		// new and closed: the core accepts only four words. disconnected is
		// not reported: ICE often recovers, but the core would close an
		// in-progress item for good ("ended", protocol §9); failed or the
		// end of the call reports it instead.
		return false
	}
	ctx, cancel := context.WithTimeout(k.ctx, k.c.cfg.SignalingTimeout)
	if err := k.c.sendStatus(ctx, k.entry.Load(), k.contact.ContactID, status); err != nil {
		k.log.Info("smpcall: reporting status", "status", status, "err", err)
	}
	cancel()
	switch s {
	case webrtc.PeerConnectionStateConnected:
		k.onConnected()
	case webrtc.PeerConnectionStateFailed:
		k.terminate(ReasonConnectionFailed, ErrConnectionFailed, true)
		return true
	}
	return false
}

func (k *Call) onConnected() {
	if k.connectedOnce {
		return
	}
	k.connectedOnce = true
	if k.connectTimer != nil {
		k.connectTimer.Stop()
		k.connectTimer = nil
	}
	var info ConnectionInfo
	for _, tr := range k.pc.GetTransceivers() {
		if s := tr.Sender(); s != nil && s.Transport() != nil {
			pair, err := s.Transport().ICETransport().GetSelectedCandidatePair()
			if i, err2 := connectionInfo(pair); err == nil && err2 == nil {
				info = i
				break
			}
		}
	}
	k.mu.Lock()
	k.info = info
	k.connAt = k.c.cfg.Now()
	encrypted := k.encrypted
	k.mu.Unlock()
	k.log.Info("smpcall: call connected", "path", info.String(), "encrypted", encrypted)
	// Media starts only now: pion drops samples written before SRTP is up.
	k.startSenders()
	close(k.connected)
	k.c.out.Push(&CallConnectedEvent{Contact: k.contact, Info: info, Encrypted: encrypted})
}

// terminate ends the call once: tells the peer if asked, closes the peer
// connection and records the reason. The call's goroutine exits after it.
func (k *Call) terminate(reason EndReason, err error, sendEnd bool) {
	k.endOnce.Do(func() {
		k.mu.Lock()
		k.reason, k.err = reason, err
		k.mu.Unlock()
		if err != nil {
			k.log.Info("smpcall: call ending", "reason", reason, "err", err)
		}
		if sendEnd {
			ctx, cancel := context.WithTimeout(context.Background(), k.c.cfg.SignalingTimeout)
			if e := k.c.endCall(ctx, k.entry.Load(), k.contact.ContactID); e != nil && !errors.Is(e, ErrNoCall) {
				k.log.Info("smpcall: sending end", "err", e)
			}
			cancel()
		}
	})
}

// finish releases everything the call holds; it runs on the call's goroutine.
func (k *Call) finish() {
	k.terminate(ReasonError, errors.New("smpcall: call goroutine exited"), true)
	for _, t := range []*time.Timer{k.initialTimer, k.connectTimer} {
		if t != nil {
			t.Stop()
		}
	}
	if k.extrasTicker != nil {
		k.extrasTicker.Stop()
	}
	k.cancel()
	k.mediaMu.Lock()
	k.mediaClosed = true
	k.mediaMu.Unlock()
	if k.pc != nil {
		if err := k.pc.Close(); err != nil {
			k.log.Info("smpcall: closing peer connection", "err", err)
		}
	}
	k.mediaWG.Wait()
	k.makeRecord()
	k.c.dropCall(k)
	k.inbox.Close()
	close(k.done)
}

// goMedia starts a media goroutine unless the call is closing.
func (k *Call) goMedia(f func()) {
	k.mediaMu.Lock()
	defer k.mediaMu.Unlock()
	if k.mediaClosed {
		return
	}
	k.mediaWG.Add(1)
	go func() {
		defer k.mediaWG.Done()
		f()
	}()
}

// --- media ---------------------------------------------------------------

// startRTCPReaders reads RTCP on every sender: pion needs it read for NACK
// and reports, and PLI/FIR from the peer ask for a key frame.
func (k *Call) startRTCPReaders() {
	for _, tr := range k.pc.GetTransceivers() {
		s := tr.Sender()
		if s == nil || s.Track() == nil {
			continue
		}
		i := sourceIndex(s.Track().ID())
		k.goMedia(func() { k.readRTCP(s, i) })
	}
}

func sourceIndex(id string) int {
	for i, s := range MediaSources {
		if string(s) == id {
			return i
		}
	}
	return -1
}

func (k *Call) readRTCP(s *webrtc.RTPSender, i int) {
	var last time.Time
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if i < 0 {
					continue
				}
				k.stats[i].keyFrameRequests.Add(1)
				if time.Since(last) < 300*time.Millisecond {
					continue
				}
				last = time.Now()
				k.send[i].requestKeyFrame()
			}
		}
	}
}
