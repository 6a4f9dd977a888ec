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
	// flood is dropped and counted), and everything else (pion callbacks,
	// stop requests, signaling results).
	inSig  *queue.Inbox[Event]
	inCtrl *queue.Inbox[any]
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
func (k *Call) Contact() Contact { return k.contact }

// Incoming reports whether the peer invited us. A placed call whose
// invitation crossed the peer's becomes incoming when it accepts the
// peer's new invitation (see PlaceCall).
func (k *Call) Incoming() bool { return k.incoming.Load() }

// Media returns the call's media type.
func (k *Call) Media() CallMediaType { return *k.mediaType.Load() }

// Events returns the call's own events: CallStateEvent, CallConnectedEvent,
// PeerMediaEvent, DecryptFailingEvent, MediaErrorEvent and, last, its
// CallRecordEvent; then the channel is closed. It is bounded by
// Config.EventBuffer: when nobody reads, the oldest events are dropped (the
// end is always visible through Done, Reason and Record).
func (k *Call) Events() <-chan Event { return k.events.C() }

// State returns the app-level state of the call. It is StateConnected from
// the moment Connected is closed, even while the "connected" status is
// still on its way to the core.
func (k *Call) State() CallState {
	snap := k.snap.Load()
	switch {
	case k.over.Load():
		return StateEnded
	case snap.reconnecting:
		return StateReconnecting
	case !snap.connectedAt.IsZero():
		return StateConnected
	}
	return k.sig.state()
}

// Done is closed when the call has ended and all its goroutines stopped.
func (k *Call) Done() <-chan struct{} { return k.done }

// Connected is closed when the call first connects.
func (k *Call) Connected() <-chan struct{} { return k.connected }

// Reason returns why the call ended, and the error behind it if any;
// (ReasonNone, nil) while it is in progress.
func (k *Call) Reason() (EndReason, error) {
	s := k.snap.Load()
	return s.reason, s.err
}

// Encrypted reports whether media frames are end-to-end encrypted with the
// shared key (known once the call is negotiated).
func (k *Call) Encrypted() bool { return k.snap.Load().encrypted }

// ConnectionInfo returns the selected candidate pair once connected.
func (k *Call) ConnectionInfo() ConnectionInfo { return k.snap.Load().info }

// WaitConnected blocks until the call is connected (returning its
// connection info), ends (returning the reason as an error: ErrUnencrypted,
// ErrConnectTimeout, ErrConnectionFailed, an error wrapping ErrProtocol,
// or ErrCallEnded), or ctx ends.
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

// End hangs up (the peer is told with x.call.end), closes the peer
// connection and waits for the call's goroutines, or for ctx. It does not
// wait for the signaling: a slow chat core delays only the x.call.end,
// which the Client still delivers (Close waits for it). It may be called
// more than once and after the call ended by itself.
func (k *Call) End(ctx context.Context) error {
	k.stop(ReasonLocalHangup, nil)
	select {
	case <-k.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop asks the loop to end the call.
func (k *Call) stop(reason EndReason, err error) { k.inCtrl.Push(stopMsg{reason: reason, err: err}) }

// deliver hands the call a transport event (from the Client's read loop;
// it never blocks).
func (k *Call) deliver(ev Event) {
	if !k.inSig.Push(ev) && !k.over.Load() {
		if n := k.inSig.Dropped(); n == 1 || n%100 == 0 {
			k.log.Warn("smpcall: too many signaling events for one call; dropped", "dropped", n)
		}
	}
}

// stateChanged is the Client announcing a state change of this call (it
// holds its lock: nothing here blocks). The end is the loop's to announce,
// with the reason it ends with.
func (k *Call) stateChanged(ev *CallStateEvent) {
	if ev.To == StateEnded {
		k.stop(ev.Reason, ev.Err)
		return
	}
	if !k.over.Load() {
		k.lastState.Store(int32(ev.To))
		k.events.Push(ev)
	}
}

// post hands the loop a message from a pion callback.
func (k *Call) post(m any) {
	if !k.inCtrl.Push(m) && !k.over.Load() {
		k.log.Error("smpcall: call control queue full; message dropped")
	}
}

// run is the call's loop: negotiation, ICE batching and timeouts, until the
// call ends.
func (k *Call) run() {
	defer k.finish()
	if k.incoming.Load() {
		if err := k.startOffer(); err != nil {
			k.fail(err)
			return
		}
	}
	var sigs []Event
	var ctrls []any
	for !k.loop.ended {
		select {
		case <-k.inCtrl.Ready():
			ctrls = k.inCtrl.Take(ctrls[:0])
			for _, m := range ctrls {
				if !k.loop.ended {
					k.onControl(m)
				}
			}
			clear(ctrls)
		case <-k.inSig.Ready():
			sigs = k.inSig.Take(sigs[:0])
			for _, ev := range sigs {
				if !k.loop.ended {
					k.onSignal(ev)
				}
			}
			clear(sigs)
		case <-timerC(k.loop.batch.initialTimer):
			k.loop.batch.initialTimer = nil
			k.sendInitial()
		case <-tickerC(k.loop.batch.extrasTicker):
			k.flushExtras(time.Now().After(k.loop.batch.extrasEnd))
		case <-timerC(k.loop.connectTimer):
			k.loop.connectTimer = nil
			if !k.loop.connected {
				k.terminate(ReasonConnectionTimeout, ErrConnectTimeout)
			}
		case now := <-tickerC(k.loop.peerTick):
			k.checkPeerMedia(now)
		case <-timerC(k.loop.budget):
			k.loop.budget = nil
			k.terminate(ReasonReconnectGaveUp, errReconnectGaveUp)
		case <-timerC(k.loop.restart.attempt):
			k.startRestart()
		case <-timerC(k.loop.restart.batchTime):
			k.loop.restart.batchTime = nil
			k.sendRestart()
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

func (k *Call) onControl(m any) {
	switch m := m.(type) {
	case stopMsg:
		k.terminate(m.reason, m.err)
	case candMsg:
		k.onCandidate(m.c)
	case connStateMsg:
		k.onConnState(m.s)
	case trackMsg:
		k.onTrack(m.t, m.r)
	case sigResult:
		k.onSigResult(m)
	case becomeCallee:
		k.onBecomeCallee(m)
	}
}

func (k *Call) onSignal(ev Event) {
	var err error
	switch ev := ev.(type) {
	case *CallOfferEvent:
		err = k.onOffer(ev)
	case *CallAnswerEvent:
		err = k.onAnswer(ev)
	case *CallExtraInfoEvent:
		k.onExtra(ev)
	}
	if err != nil {
		k.fail(err)
	}
}

// onSigResult handles what came of a signaling command.
func (k *Call) onSigResult(r sigResult) {
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
		k.terminate(reason, r.err)
	case sigExtra:
		// Keep the candidates for the next flush.
		k.log.Info("smpcall: sending extra candidates failed", "err", r.err)
		k.loop.batch.pending = append(r.cmd.cands, k.loop.batch.pending...)
	case sigStatus:
		k.log.Info("smpcall: reporting status", "status", r.cmd.status, "err", r.err)
	}
}

// fail ends the call after an error, with the reason the error implies.
func (k *Call) fail(err error) {
	switch {
	case errors.Is(err, ErrUnencrypted):
		k.terminate(ReasonUnencrypted, err)
	case errors.Is(err, ErrProtocol):
		k.terminate(ReasonProtocolError, err)
	default:
		k.terminate(ReasonInternalError, err)
	}
}

// publish stores a new snapshot for readers.
func (k *Call) publish() {
	s := k.loop.snap
	k.snap.Store(&s)
}

// terminate ends the call once: the Client marks it over at once, the
// outbox drops what it has not sent and tells the peer (x.call.end) if the
// call was still live, and the loop exits after this.
func (k *Call) terminate(reason EndReason, err error) {
	if k.loop.ended {
		return
	}
	k.loop.ended = true
	k.loop.snap.reason, k.loop.snap.err = reason, err
	k.publish()
	k.over.Store(true)
	if err != nil {
		k.log.Info("smpcall: call ending", "reason", reason, "err", err)
	}
	var end *sigCmd
	if tell, t := k.sig.ended(reason, err); tell {
		end = &sigCmd{kind: sigEnd, t: t}
	}
	k.out.finish(end)
}

// finish releases everything the call holds; it runs on the loop goroutine
// after the loop.
func (k *Call) finish() {
	if !k.loop.ended {
		k.terminate(ReasonInternalError, errors.New("smpcall: call loop exited"))
	}
	for _, t := range []*time.Timer{k.loop.batch.initialTimer, k.loop.connectTimer, k.loop.budget, k.loop.restart.attempt, k.loop.restart.batchTime} {
		if t != nil {
			t.Stop()
		}
	}
	for _, t := range []*time.Ticker{k.loop.batch.extrasTicker, k.loop.peerTick} {
		if t != nil {
			t.Stop()
		}
	}
	k.mediaStop()
	k.mediaMu.Lock()
	k.mediaOff = true
	k.mediaMu.Unlock()
	if k.closePeerConnection() && k.loop.cipher != nil {
		k.loop.cipher.Destroy() // no media goroutine uses it any more
	}
	if k.key != nil {
		// The Call's own copy of the invitation's key (AcceptCall and the
		// crossing rule make it); crypto/aes keeps the expanded key where
		// Go cannot overwrite it (framecrypt.Cipher.Destroy).
		*k.key = SharedKey{}
		k.key = nil
	}
	k.inSig.Close()
	k.inCtrl.Close()
	r := k.makeRecord()
	k.events.Push(&CallStateEvent{Contact: k.contact, From: CallState(k.lastState.Load()), To: StateEnded, Reason: k.loop.snap.reason, Err: k.loop.snap.err})
	k.events.Push(&CallRecordEvent{Record: r})
	k.events.Close()
	k.sig.detach()
	close(k.done)
}

// closeTimeout bounds how long finish waits for pion to close the peer
// connection and for the media goroutines to see it.
const closeTimeout = 10 * time.Second

// closePeerConnection closes the peer connection and waits for pion's
// goroutines and ours. GracefulClose, not Close: Close returns at once when
// the peer's DTLS close already started one in a pion goroutine, which then
// outlives the call. pion v4.2.26 can deadlock closing a connection that
// connected a moment ago (a variant of pion/webrtc#1430, seen once in about
// 1000 calls): the wait is bounded, so the call still ends, logging that
// pion's goroutines are left behind. It reports whether everything stopped.
func (k *Call) closePeerConnection() bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if k.loop.pc != nil {
			if err := k.loop.pc.GracefulClose(); err != nil {
				k.log.Info("smpcall: closing peer connection", "err", err)
			}
		}
		k.mediaWG.Wait()
	}()
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		k.log.Error("smpcall: pion did not close the peer connection in time; its goroutines are left behind")
		return false
	}
}

// goMedia starts a media goroutine unless the call is closing.
func (k *Call) goMedia(f func()) {
	k.mediaMu.Lock()
	defer k.mediaMu.Unlock()
	if k.mediaOff {
		return
	}
	k.mediaWG.Add(1)
	go func() {
		defer k.mediaWG.Done()
		f()
	}()
}
