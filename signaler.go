package smpcall

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/smpcall/smpcall/internal/rtcpayload"
)

// signaler is a Call's only way to the signaling side: the chat core's
// commands (protocol §8.2) for this one call. The Client implements it with
// callLink; the Call never reaches into the Client otherwise.
type signaler interface {
	offer(ctx context.Context, offer WebRTCCallOffer) error
	answer(ctx context.Context, answer WebRTCSession) error
	extra(ctx context.Context, extra WebRTCExtraInfo) error
	status(ctx context.Context, status WebRTCCallStatus) error
	// ended marks the call over on the signaling side at once, without
	// I/O. It reports whether the peer still has to be told (x.call.end),
	// with the ticket that keeps later commands for the contact behind it.
	ended(reason EndReason, err error) (tellPeer bool, t ticket)
	// tellEnd sends the x.call.end that ended promised.
	tellEnd(ctx context.Context, t ticket) error
	// state is the app-level state of this call as the Client keeps it.
	state() CallState
	// detach tells the Client that the Call has finished.
	detach()
	// afterCall runs f in a goroutine that outlives the call and that the
	// Client's Close waits for (closing the peer connection).
	afterCall(f func())
}

type sigKind uint8

const (
	sigOffer sigKind = iota
	sigAnswer
	sigExtra
	sigStatus
	sigEnd
)

func (k sigKind) String() string {
	return [...]string{"offer", "answer", "extra", "status", "end"}[k]
}

// sigCmd is one signaling command a Call's loop decided to send.
type sigCmd struct {
	kind    sigKind
	offer   WebRTCCallOffer
	session WebRTCSession
	extra   WebRTCExtraInfo
	// cands are the candidates an extra carries, handed back if it fails.
	cands  []rtcpayload.Candidate
	status WebRTCCallStatus
	t      ticket
}

// sigResult is what came of a command, reported back to the loop.
type sigResult struct {
	cmd sigCmd
	err error
}

// outboxLimit bounds the commands waiting in an outbox. A call produces a
// handful (an offer or answer, a few extras, a few statuses, an end), and
// statuses are coalesced, so reaching it means something is stuck; what
// does not fit is dropped and logged.
const outboxLimit = 64

// outbox is a Call's send queue: the loop decides, the outbox's goroutine
// does the I/O, so the loop never waits for the network or the core (the
// way quic-go separates its run loop from sending). Commands go out one at
// a time in the order decided, because the core expects them in order
// (offer before extras, protocol §4.2).
//
// Concurrency: push, abort and finish are called by the call's loop; run is
// the outbox's own goroutine.
type outbox struct {
	sig     signaler
	timeout time.Duration
	report  func(sigResult)
	log     *slog.Logger

	mu      sync.Mutex
	queue   []sigCmd
	wake    chan struct{}
	base    context.Context
	abortFn context.CancelFunc
	final   context.Context
	closing bool
}

// newOutbox returns an outbox whose commands run under base (cancelled by
// abort) and whose final end runs under final (the Client's lifetime, so
// that Close can bound it).
func newOutbox(sig signaler, final context.Context, timeout time.Duration, report func(sigResult), log *slog.Logger) *outbox {
	base, cancel := context.WithCancel(final)
	return &outbox{sig: sig, timeout: timeout, report: report, log: log,
		wake: make(chan struct{}, 1), base: base, abortFn: cancel, final: final}
}

// push queues a command. A status replaces a status still waiting, since
// only the latest one matters to the core's call item.
func (o *outbox) push(cmd sigCmd) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return
	}
	if cmd.kind == sigStatus {
		for i := range o.queue {
			if o.queue[i].kind == sigStatus {
				o.queue[i] = cmd
				return
			}
		}
	}
	if len(o.queue) >= outboxLimit {
		o.log.Warn("smpcall: signaling queue full; command dropped", "command", cmd.kind)
		return
	}
	o.queue = append(o.queue, cmd)
	o.poke()
}

func (o *outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// finish drops what has not been sent, interrupts the command in flight,
// queues the final end (if any), and lets the goroutine exit after it.
func (o *outbox) finish(end *sigCmd) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.abortFn()
	o.queue = o.queue[:0]
	if end != nil {
		o.queue = append(o.queue, *end)
	}
	o.closing = true
	o.poke()
}

// run sends the commands until finish and the final end are done.
func (o *outbox) run() {
	defer o.abortFn()
	for {
		o.mu.Lock()
		for len(o.queue) == 0 && !o.closing {
			o.mu.Unlock()
			<-o.wake
			o.mu.Lock()
		}
		if len(o.queue) == 0 {
			o.mu.Unlock()
			return
		}
		cmd := o.queue[0]
		o.queue = o.queue[1:]
		ctx := o.base
		if cmd.kind == sigEnd {
			ctx = o.final
		}
		o.mu.Unlock()

		var cancel context.CancelFunc = func() {}
		if o.timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, o.timeout)
		}
		err := o.exec(ctx, cmd)
		cancel()
		if cmd.kind == sigEnd {
			if err != nil {
				o.log.Info("smpcall: sending end", "err", err)
			}
			continue
		}
		o.report(sigResult{cmd: cmd, err: err})
	}
}

func (o *outbox) exec(ctx context.Context, cmd sigCmd) error {
	switch cmd.kind {
	case sigOffer:
		return o.sig.offer(ctx, cmd.offer)
	case sigAnswer:
		return o.sig.answer(ctx, cmd.session)
	case sigExtra:
		return o.sig.extra(ctx, cmd.extra)
	case sigStatus:
		return o.sig.status(ctx, cmd.status)
	default:
		return o.sig.tellEnd(ctx, cmd.t)
	}
}
