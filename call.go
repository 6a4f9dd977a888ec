package smpcall

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/internal/queue"
	"github.com/smpcall/smpcall/internal/rtcpayload"
	"github.com/smpcall/smpcall/video"
)

// Errors of the high-level call path, returned by Call.WaitConnected and
// Call.Reason.
var (
	// ErrUnencrypted: the call would run without frame encryption and
	// Config.AllowUnencrypted is false (protocol §5.1).
	ErrUnencrypted = errors.New("smpcall: call would not be frame-encrypted (Config.AllowUnencrypted is false)")
	// ErrConnectTimeout: the call did not connect within Config.ConnectTimeout.
	ErrConnectTimeout = errors.New("smpcall: call did not connect in time")
	// ErrConnectionFailed: the WebRTC connection failed.
	ErrConnectionFailed = errors.New("smpcall: WebRTC connection failed")
	// ErrProtocol is wrapped by errors about what the peer or the core sent
	// (an SDP that does not apply, a bad key, protocol §10.3).
	ErrProtocol = errors.New("smpcall: protocol error")
	// ErrCallEnded is returned by Call methods once the call is over.
	ErrCallEnded = errors.New("smpcall: call ended")

	errCrossingTooLate = errors.New("smpcall: crossing invitation after the peer connection existed")
)

// Sources are what this side sends, by CallMediaSource. Nil sources send
// nothing on that stream (the m-line still has an idle sender, so SimpleX
// peers treat us as a current client).
type Sources struct {
	// Mic is the audio sent as SourceMic, the microphone.
	Mic audio.Source
	// Camera is the video sent as SourceCamera, the camera.
	Camera video.Source
	// ScreenAudio is the audio sent as SourceScreenAudio, with a shared
	// screen.
	ScreenAudio audio.Source
	// ScreenVideo is the video sent as SourceScreenVideo, a shared screen.
	ScreenVideo video.Source
}

// Sinks receive what the peer sends, decrypted, by the peer's CallMediaSource.
type Sinks struct {
	// Mic receives the peer's SourceMic audio; nil drops it.
	Mic audio.Sink
	// Camera receives the peer's SourceCamera video; nil drops it.
	Camera video.Sink
	// ScreenAudio receives the peer's SourceScreenAudio audio; nil drops
	// it.
	ScreenAudio audio.Sink
	// ScreenVideo receives the peer's SourceScreenVideo video; nil drops
	// it.
	ScreenVideo video.Sink
}

// CallOptions configure one call of the high-level path.
type CallOptions struct {
	// Media of a placed call: MediaAudio or MediaVideo (default video).
	// AcceptCall ignores it and uses the invitation's media.
	Media CallMediaType
	// Sources are what the call sends from the start; SetAudioSource and
	// SetVideoSource replace them during the call.
	Sources Sources
	// Sinks receive what the peer sends, for the whole call.
	Sinks Sinks
}

// Call is one call of the high-level path: PlaceCall or AcceptCall start it
// and drive its WebRTC session to connected; End hangs up.
//
// Ownership: one goroutine, the call's loop (run), owns all negotiation
// state (the peer connection, ICE batching, timers: the loopState). Pion's
// callbacks, the Client (transport events) and the embedder (End) only post
// messages to it. Signaling I/O runs off the loop in the call's outbox, so
// the loop never waits for the network or the core. The media goroutines
// get an immutable mediaSession when the peer connection is set up, and
// share only atomic counters and the per-stream send state with the rest.
// Readers (State, Stats, ConnectionInfo, Reason) read a snapshot the loop
// publishes.
//
// Concurrency: all methods are safe for concurrent use. End (and the
// Client's Close) stops every goroutine of the call and waits for them.
type Call struct {
	contact Contact
	// incoming and mediaType change once at most: when crossing
	// invitations make a placed call the callee (crossing.go).
	incoming  atomic.Bool
	mediaType atomic.Pointer[CallMediaType]
	opts      CallOptions
	cfg       *Config
	log       *slog.Logger
	sig       signaler
	// key is the invitation's shared key of an incoming call; an outgoing
	// call learns its key from the offer.
	key       *SharedKey
	startedAt time.Time

	// Ways in: transport events for this call from the Client (bounded: a
	// flood is dropped and counted), and pion's callbacks and signaling
	// results; stop requests have their own way in (stopC), below.
	inSig  *queue.Inbox[Event]
	inCtrl *queue.Inbox[any]
	// stopC wakes the loop for the first stop request, kept in stopReq.
	// Not in inCtrl: a full control queue must not lose a hang-up.
	stopC   chan struct{}
	stopReq atomic.Pointer[stopMsg]
	// Ways out.
	out    *outbox
	events *queue.Out[Event]

	snap      atomic.Pointer[callSnapshot]
	record    atomic.Pointer[CallRecord]
	over      atomic.Bool  // the loop decided the call is over
	lastState atomic.Int32 // the last CallState announced, for the final event
	done      chan struct{}
	connected chan struct{}

	// Shared with the media goroutines (media.go, controls.go).
	stats     [numStreams]streamCounters
	send      [numStreams]sendStream
	camera    atomic.Value // VideoCamera as string
	session   atomic.Pointer[mediaSession]
	mediaCtx  context.Context
	mediaStop context.CancelFunc
	mediaMu   sync.Mutex
	mediaOff  bool
	mediaWake []readDeadliner // what the media goroutines block reading (under mediaMu)
	mediaWG   sync.WaitGroup
	writeErrs atomic.Uint64
	// rtt is the round-trip time from the peer's RTCP reports, in ns (0: none yet).
	rtt atomic.Int64

	loop loopState
}

// loopState is the negotiation state; only the call's loop touches it.
type loopState struct {
	pc          *webrtc.PeerConnection
	cipher      *framecrypt.Cipher
	tracks      [numStreams]*webrtc.TrackLocalStaticSample
	localDesc   *webrtc.SessionDescription
	remoteSet   bool
	remoteQueue []rtcpayload.Candidate
	// remoteAdded counts the candidates handed to pion in ICE generation
	// remoteGen (bounded by maxRemoteCandidates).
	remoteAdded, remoteGen int
	batch                  iceBatch

	connectTimer *time.Timer
	peerTick     *time.Ticker
	connected    bool
	// peerReconnect: the peer announced the ICE-restart extension.
	peerReconnect bool
	reconnecting  bool
	budget        *time.Timer
	restart       restartState
	ended         bool
	snap          callSnapshot
}

// callSnapshot is what readers of a Call see; the loop publishes a new
// copy whenever it changes.
type callSnapshot struct {
	info         ConnectionInfo
	encrypted    bool
	connectedAt  time.Time
	reconnecting bool
	reason       EndReason
	err          error
}

// messages to the loop
type (
	candMsg      struct{ c *webrtc.ICECandidate }
	connStateMsg struct{ s webrtc.PeerConnectionState }
	trackMsg     struct {
		t *webrtc.TrackRemote
		r *webrtc.RTPReceiver
	}
	stopMsg struct {
		reason EndReason
		err    error
	}
)

// Bounds of a call's inboxes. Transport events for one call are a handful
// (an offer or answer and some extras); more is a flood from the peer or
// the core, dropped and counted. Control messages come from this process
// only (candidates, connection states, tracks, results), bounded by what
// pion produces for one peer connection.
const (
	sigInboxLimit  = 64
	ctrlInboxLimit = 1024
)

func newCall(sig signaler, cfg *Config, contact Contact, incoming bool, media CallMediaType, key *SharedKey, opts *CallOptions) *Call {
	k := &Call{
		contact: contact, cfg: cfg, sig: sig, key: key,
		log:       cfg.Logger.With("contact", contact.ContactID),
		startedAt: time.Now(),
		inSig:     queue.NewInbox[Event](sigInboxLimit),
		inCtrl:    queue.NewInbox[any](ctrlInboxLimit),
		stopC:     make(chan struct{}, 1),
		events:    queue.NewOut[Event](cfg.EventBuffer),
		done:      make(chan struct{}),
		connected: make(chan struct{}),
	}
	k.incoming.Store(incoming)
	k.mediaType.Store(&media)
	if opts != nil {
		k.opts = *opts
	}
	k.mediaCtx, k.mediaStop = context.WithCancel(context.Background())
	k.snap.Store(&callSnapshot{})
	k.initStreams()
	return k
}

// Contact returns the peer.
func (c *Call) Contact() Contact { return c.contact }

// Incoming reports whether the peer invited us. A placed call whose
// invitation crossed the peer's becomes incoming when it accepts the
// peer's new invitation (see PlaceCall).
func (c *Call) Incoming() bool { return c.incoming.Load() }

// Media returns the call's media type.
func (c *Call) Media() CallMediaType { return *c.mediaType.Load() }

// Events returns the call's own events: CallStateEvent, CallConnectedEvent,
// PeerMediaEvent, DecryptFailingEvent, MediaErrorEvent and, last, its
// CallRecordEvent; then the channel is closed. It is bounded by
// Config.EventBuffer: when nobody reads, the oldest events are dropped (the
// end is always visible through Done, Reason and Record).
func (c *Call) Events() <-chan Event { return c.events.C() }

// State returns the app-level state of the call. It is StateConnected from
// the moment Connected is closed, even while the "connected" status is
// still on its way to the core.
func (c *Call) State() CallState {
	snap := c.snap.Load()
	switch {
	case c.over.Load():
		return StateEnded
	case snap.reconnecting:
		return StateReconnecting
	case !snap.connectedAt.IsZero():
		return StateConnected
	}
	return c.sig.state()
}

// Done is closed when the call has ended and its own goroutines (the loop
// and the media goroutines) stopped. pion's close of the peer connection
// may still be finishing (up to seconds behind a TURN transaction); the
// Client's Close waits for it.
func (c *Call) Done() <-chan struct{} { return c.done }

// Connected is closed when the call first connects.
func (c *Call) Connected() <-chan struct{} { return c.connected }

// Reason returns why the call ended, and the error behind it if any;
// (ReasonNone, nil) while it is in progress.
func (c *Call) Reason() (EndReason, error) {
	s := c.snap.Load()
	return s.reason, s.err
}

// Encrypted reports whether media frames are end-to-end encrypted with the
// shared key (known once the call is negotiated).
func (c *Call) Encrypted() bool { return c.snap.Load().encrypted }

// ConnectionInfo returns the selected candidate pair once connected.
func (c *Call) ConnectionInfo() ConnectionInfo { return c.snap.Load().info }

// WaitConnected blocks until the call is connected (returning its
// connection info), ends (returning the reason as an error: ErrUnencrypted,
// ErrConnectTimeout, ErrConnectionFailed, an error wrapping ErrProtocol,
// or ErrCallEnded), or ctx ends.
func (c *Call) WaitConnected(ctx context.Context) (ConnectionInfo, error) {
	select {
	case <-c.connected:
		return c.ConnectionInfo(), nil
	case <-c.done:
		select {
		case <-c.connected:
			return c.ConnectionInfo(), nil
		default:
		}
		_, err := c.Reason()
		if err == nil {
			err = ErrCallEnded
		}
		return ConnectionInfo{}, err
	case <-ctx.Done():
		return ConnectionInfo{}, ctx.Err()
	}
}

// End hangs up (the peer is told with x.call.end), stops the media and
// waits for the call's goroutines, or for ctx; the peer connection is
// closed after that, and the Client's Close waits for it. It does not
// wait for the signaling either: a slow chat core delays only the
// x.call.end, which the Client still delivers (Close waits for it). It may be called
// more than once and after the call ended by itself.
func (c *Call) End(ctx context.Context) error {
	c.stop(ReasonLocalHangup, nil)
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop asks the loop to end the call; the first request's reason wins.
// It never blocks and is never dropped.
func (c *Call) stop(reason EndReason, err error) {
	c.stopReq.CompareAndSwap(nil, &stopMsg{reason: reason, err: err})
	select {
	case c.stopC <- struct{}{}:
	default: // already signalled
	}
}

// deliver hands the call a transport event (from the Client's read loop;
// it never blocks).
func (c *Call) deliver(ev Event) {
	if !c.inSig.Push(ev) && !c.over.Load() {
		if n := c.inSig.Dropped(); n == 1 || n%100 == 0 {
			c.log.Warn("smpcall: too many signaling events for one call; dropped", "dropped", n)
		}
	}
}

// stateChanged is the Client announcing a state change of this call (it
// holds its lock: nothing here blocks). The end is the loop's to announce,
// with the reason it ends with.
func (c *Call) stateChanged(ev *CallStateEvent) {
	if ev.To == StateEnded {
		c.stop(ev.Reason, ev.Err)
		return
	}
	if !c.over.Load() {
		c.lastState.Store(int32(ev.To))
		c.events.Push(ev)
	}
}

// post hands the loop a message from a pion callback.
func (c *Call) post(m any) {
	if !c.inCtrl.Push(m) && !c.over.Load() {
		c.log.Error("smpcall: call control queue full; message dropped")
	}
}

// run is the call's loop: negotiation, ICE batching and timeouts, until the
// call ends.
func (c *Call) run() {
	defer c.finish()
	if c.incoming.Load() {
		if err := c.startOffer(); err != nil {
			c.fail(err)
			return
		}
	}
	var sigs []Event
	var ctrls []any
	for !c.loop.ended {
		select {
		case <-c.inCtrl.Ready():
			ctrls = c.inCtrl.Take(ctrls[:0])
			for _, m := range ctrls {
				if !c.loop.ended {
					c.onControl(m)
				}
			}
			clear(ctrls)
		case <-c.stopC:
			m := c.stopReq.Load()
			c.terminate(m.reason, m.err)
		case <-c.inSig.Ready():
			sigs = c.inSig.Take(sigs[:0])
			for _, ev := range sigs {
				if !c.loop.ended {
					c.onSignal(ev)
				}
			}
			clear(sigs)
		case <-timerC(c.loop.batch.initialTimer):
			c.loop.batch.initialTimer = nil
			c.sendInitial()
		case <-tickerC(c.loop.batch.extrasTicker):
			c.flushExtras(time.Now().After(c.loop.batch.extrasEnd))
		case <-timerC(c.loop.connectTimer):
			c.loop.connectTimer = nil
			if !c.loop.connected {
				c.terminate(ReasonConnectionTimeout, ErrConnectTimeout)
			}
		case now := <-tickerC(c.loop.peerTick):
			c.checkPeerMedia(now)
		case <-timerC(c.loop.budget):
			c.loop.budget = nil
			c.terminate(ReasonReconnectGaveUp, errReconnectGaveUp)
		case <-timerC(c.loop.restart.attempt):
			c.startRestart()
		case <-timerC(c.loop.restart.batchTime):
			c.loop.restart.batchTime = nil
			c.sendRestart()
		}
	}
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

func (c *Call) onControl(m any) {
	switch m := m.(type) {
	case candMsg:
		c.onCandidate(m.c)
	case connStateMsg:
		c.onConnState(m.s)
	case trackMsg:
		c.onTrack(m.t, m.r)
	case sigResult:
		c.onSigResult(m)
	case becomeCallee:
		c.onBecomeCallee(m)
	}
}

func (c *Call) onSignal(ev Event) {
	var err error
	switch ev := ev.(type) {
	case *CallOfferEvent:
		err = c.onOffer(ev)
	case *CallAnswerEvent:
		err = c.onAnswer(ev)
	case *CallExtraInfoEvent:
		c.onExtra(ev)
	}
	if err != nil {
		c.fail(err)
	}
}

// onSigResult handles what came of a signaling command.
func (c *Call) onSigResult(r sigResult) {
	if r.err == nil {
		return
	}
	switch r.cmd.kind {
	case sigOffer, sigAnswer:
		// Without the offer or answer at the peer there is no call.
		reason := ReasonTransportLost
		var ce *ChatError
		if errors.As(r.err, &ce) {
			reason = ReasonProtocolError
		}
		c.terminate(reason, r.err)
	case sigExtra:
		// Keep the candidates for the next flush.
		c.log.Info("smpcall: sending extra candidates failed", "err", r.err)
		c.loop.batch.pending = append(r.cmd.cands, c.loop.batch.pending...)
	case sigStatus:
		c.log.Info("smpcall: reporting status", "status", r.cmd.status, "err", r.err)
	}
}

// fail ends the call after an error, with the reason the error implies.
func (c *Call) fail(err error) {
	switch {
	case errors.Is(err, ErrUnencrypted):
		c.terminate(ReasonUnencrypted, err)
	case errors.Is(err, ErrProtocol):
		c.terminate(ReasonProtocolError, err)
	default:
		c.terminate(ReasonInternalError, err)
	}
}

// publish stores a new snapshot for readers.
func (c *Call) publish() {
	s := c.loop.snap
	c.snap.Store(&s)
}

// terminate ends the call once: the Client marks it over at once, the
// outbox drops what it has not sent and tells the peer (x.call.end) if the
// call was still live, and the loop exits after this.
func (c *Call) terminate(reason EndReason, err error) {
	if c.loop.ended {
		return
	}
	c.loop.ended = true
	c.loop.snap.reason, c.loop.snap.err = reason, err
	c.publish()
	c.over.Store(true)
	if err != nil {
		c.log.Info("smpcall: call ending", "reason", reason, "err", err)
	}
	var end *sigCmd
	if tell, t := c.sig.ended(reason, err); tell {
		end = &sigCmd{kind: sigEnd, t: t}
	}
	c.out.finish(end)
}

// finish releases everything the call holds; it runs on the loop goroutine
// after the loop.
func (c *Call) finish() {
	if !c.loop.ended {
		c.terminate(ReasonInternalError, errors.New("smpcall: call loop exited"))
	}
	for _, t := range []*time.Timer{c.loop.batch.initialTimer, c.loop.connectTimer, c.loop.budget, c.loop.restart.attempt, c.loop.restart.batchTime} {
		if t != nil {
			t.Stop()
		}
	}
	for _, t := range []*time.Ticker{c.loop.batch.extrasTicker, c.loop.peerTick} {
		if t != nil {
			t.Stop()
		}
	}
	c.mediaStop()
	c.mediaMu.Lock()
	c.mediaOff = true
	wake := c.mediaWake
	c.mediaWake = nil
	c.mediaMu.Unlock()
	// Reads in progress return at once; a reader that sets a new deadline
	// afterwards checks mediaCtx first (receiver.read).
	past := time.Now()
	for _, r := range wake {
		_ = r.SetReadDeadline(past)
	}
	if c.closePeerConnection() && c.loop.cipher != nil {
		c.loop.cipher.Destroy() // no media goroutine uses it any more
	}
	if c.key != nil {
		// The Call's own copy of the invitation's key (AcceptCall and the
		// crossing rule make it); crypto/aes keeps the expanded key where
		// Go cannot overwrite it (framecrypt.Cipher.Destroy).
		*c.key = SharedKey{}
		c.key = nil
	}
	c.inSig.Close()
	c.inCtrl.Close()
	r := c.makeRecord()
	c.events.Push(&CallStateEvent{Contact: c.contact, From: CallState(c.lastState.Load()), To: StateEnded, Reason: c.loop.snap.reason, Err: c.loop.snap.err})
	c.events.Push(&CallRecordEvent{Record: r})
	c.events.Close()
	c.sig.detach()
	close(c.done)
}

// closeTimeout bounds how long finish waits for the media goroutines.
const closeTimeout = 10 * time.Second

// closePeerConnection stops the media goroutines and has the peer
// connection closed. The call does not wait for pion's close: it can take
// seconds (pion's ICE agent finishes a TURN CreatePermission transaction
// first; 7.7 s seen in the fault campaign), and v4.2.26 can even deadlock
// closing a connection that connected a moment ago (a variant of
// pion/webrtc#1430). So the media goroutines are woken by read deadlines
// in the past, and the close runs after the call, in a goroutine the
// Client's Close waits for. GracefulClose, not Close: Close returns at once
// when the peer's DTLS close already started one in a pion goroutine, which
// then outlives everything. It reports whether the media goroutines
// stopped (they always should; the wait is bounded all the same).
func (c *Call) closePeerConnection() bool {
	if pc := c.loop.pc; pc != nil {
		c.sig.afterCall(func() {
			if err := pc.GracefulClose(); err != nil {
				c.log.Info("smpcall: closing peer connection", "err", err)
			}
		})
	}
	if !runBounded(c.mediaWG.Wait, closeTimeout) {
		c.log.Error("smpcall: media goroutines did not stop in time; they are left behind")
		return false
	}
	return true
}

// readDeadliner is what a media goroutine blocks reading: a remote track
// or a sender's RTCP. Only ones a goroutine has started reading are
// recorded: pion's TrackRemote.SetReadDeadline panics on a track whose
// stream is not set up yet.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// goMedia starts a media goroutine unless the call is closing. wake, if
// not nil, is what f blocks reading; the call's end sets its read deadline
// in the past, so that f returns without waiting for pion's close.
func (c *Call) goMedia(f func(), wake readDeadliner) {
	c.mediaMu.Lock()
	defer c.mediaMu.Unlock()
	if c.mediaOff {
		return
	}
	if wake != nil {
		c.mediaWake = append(c.mediaWake, wake)
	}
	c.mediaWG.Add(1)
	go func() {
		defer c.mediaWG.Done()
		f()
	}()
}
