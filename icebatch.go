package smpcall

import (
	"fmt"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall/internal/jsonfield"
	"github.com/smpcall/smpcall/internal/rtcpayload"
)

// MessageOverhead bounds what the chat message envelope adds around a
// signaling payload ({"v","msgId","event","params":{"callId",…}} and the
// callDhPubKey the core inserts into an offer). Package smp's tests check
// it against the real encoder.
const MessageOverhead = 256

// iceBatch is the ICE candidate batching of protocol §6.5: the first batch
// rides in the offer or answer when gathering completes or after
// ICE.InitialDelay, whichever is first; later candidates go out as extras
// every ICE.ExtrasInterval until ICE.ExtrasTimeout after the first batch.
// Owned by the call's loop.
type iceBatch struct {
	pending []rtcpayload.Candidate
	// expect are the candidate types the first batch waits for (host and
	// server-reflexive addresses, or relays under relay-only), have the
	// types gathered so far, sent the types already sent. When every
	// expected type is there the first batch goes out at once: pion's
	// "gathering complete" can take seconds (a STUN request on an interface
	// that cannot reach the server times out). After it, a candidate of a
	// type not sent yet (typically the relay, whose allocation takes two
	// TURN round trips) goes out at once as an extra instead of waiting for
	// the next ExtrasInterval; more of a type already sent waits for it.
	expect, have, sent candTypes
	gatherDone         bool
	initialSent        bool
	extrasEnd          time.Time
	initialTimer       *time.Timer
	extrasTicker       *time.Ticker
}

// start arms the initial-batch timer once the local description exists.
func (b *iceBatch) start(delay time.Duration) { b.initialTimer = time.NewTimer(delay) }

// markSent records the types of candidates handed to the outbox.
func (b *iceBatch) markSent(cs []rtcpayload.Candidate) {
	for _, c := range cs {
		switch {
		case strings.Contains(c.Candidate, " typ host"):
			b.sent |= candHost
		case strings.Contains(c.Candidate, " typ srflx"):
			b.sent |= candSrflx
		case strings.Contains(c.Candidate, " typ relay"):
			b.sent |= candRelay
		}
	}
}

// candTypes is a set of ICE candidate types.
type candTypes uint8

const (
	candHost candTypes = 1 << iota
	candSrflx
	candRelay
)

// firstBatchTypes are the candidate types the first batch waits for with
// these servers and this policy: under relay-only the relays (there is
// nothing else); otherwise host addresses and, with a STUN server,
// server-reflexive ones, which take one round trip; relays follow as an
// extra.
func firstBatchTypes(servers []ICEServer, relayOnly bool) candTypes {
	var t candTypes
	for _, s := range servers {
		for _, u := range s.URLs {
			switch {
			case strings.HasPrefix(u, "turn") && relayOnly:
				t |= candRelay
			case strings.HasPrefix(u, "stun") && !relayOnly:
				t |= candSrflx
			}
		}
	}
	if !relayOnly {
		t |= candHost
	}
	return t
}

func typeOf(c *webrtc.ICECandidate) candTypes {
	switch c.Typ {
	case webrtc.ICECandidateTypeHost:
		return candHost
	case webrtc.ICECandidateTypeSrflx:
		return candSrflx
	case webrtc.ICECandidateTypeRelay:
		return candRelay
	}
	return 0
}

func (c *Call) onCandidate(ic *webrtc.ICECandidate) {
	if c.loop.restart.gen > 0 {
		c.onRestartCandidate(ic)
		return
	}
	b := &c.loop.batch
	if ic == nil {
		b.gatherDone = true
		if !b.initialSent && c.loop.localDesc != nil {
			// Gathering finished before the timer: send now.
			if b.initialTimer != nil {
				b.initialTimer.Stop()
				b.initialTimer = nil
			}
			c.sendInitial()
		} else if b.initialSent {
			c.flushExtras(true)
		}
		return
	}
	if cand, ok := payloadCandidate(ic); ok {
		b.pending = append(b.pending, cand)
		typ := typeOf(ic)
		b.have |= typ
		switch {
		case !b.initialSent && c.loop.localDesc != nil && b.expect != 0 && b.have&b.expect == b.expect:
			stopTimer(&b.initialTimer)
			c.sendInitial()
		case b.initialSent && b.sent&typ == 0:
			c.flushExtras(false) // a new kind of path: do not make the peer wait for it
		}
	}
}

// payloadCandidate is c in the payload's form (protocol §6.2). With
// BUNDLE every candidate belongs to the first m-line.
func payloadCandidate(c *webrtc.ICECandidate) (rtcpayload.Candidate, bool) {
	ice, err := c.ToICE()
	if err != nil {
		return rtcpayload.Candidate{}, false
	}
	mid, idx := "0", uint16(0)
	return rtcpayload.Candidate{Candidate: "candidate:" + ice.Marshal(), SDPMid: &mid, SDPMLineIndex: &idx}, true
}

// sendInitial queues the offer or answer with as many gathered candidates
// as fit in the message limit; the rest go to extras, which the outbox
// sends only after it (protocol §6.5: candidates that reach the peer before
// its call exists are dropped).
func (c *Call) sendInitial() {
	b := &c.loop.batch
	if b.initialSent || c.loop.localDesc == nil {
		return
	}
	b.initialSent = true
	incoming := c.incoming.Load()
	typ := "answer"
	if incoming {
		typ = "offer"
	}
	// Announce the ICE-restart extension (protocol §6.8): every known parser
	// ignores the key, and two peers that both announce it survive network
	// changes.
	rtcSession, err := rtcpayload.EncodeSession(rtcpayload.Session{Type: typ, SDP: c.loop.localDesc.SDP, Reconnect: !c.cfg.DisableReconnectExtension})
	if err != nil {
		c.terminate(ReasonInternalError, err)
		return
	}
	callType := CallType{Media: c.Media(), Capabilities: CallCapabilities{Encryption: true}}
	n, cands, err := c.fit(b.pending, func(cands string) any {
		s := WebRTCSession{RTCSession: rtcSession, RTCIceCandidates: cands}
		if incoming {
			return WebRTCCallOffer{CallType: callType, RTCSession: s}
		}
		return s
	}, rtcpayload.EncodeCandidates)
	if err != nil {
		c.terminate(ReasonInternalError, fmt.Errorf("%s: %w", typ, err))
		return
	}
	b.markSent(b.pending[:n])
	b.pending = b.pending[n:]
	session := WebRTCSession{RTCSession: rtcSession, RTCIceCandidates: cands}
	if incoming {
		c.out.push(sigCmd{kind: sigOffer, offer: WebRTCCallOffer{CallType: callType, RTCSession: session}})
	} else {
		c.out.push(sigCmd{kind: sigAnswer, session: session})
	}
	b.extrasEnd = time.Now().Add(c.cfg.ICE.ExtrasTimeout)
	if b.gatherDone {
		c.flushExtras(true) // only what did not fit
		return
	}
	b.extrasTicker = time.NewTicker(c.cfg.ICE.ExtrasInterval)
}

// flushExtras queues pending candidates as extras, each message within the
// size limit; final stops the batching.
func (c *Call) flushExtras(final bool) {
	b := &c.loop.batch
	for len(b.pending) > 0 {
		n, cands, err := c.fit(b.pending, extraInfo, rtcpayload.EncodeCandidates)
		if err != nil || n == 0 {
			c.log.Warn("smpcall: candidate too large for a message; dropped", "err", err)
			b.pending = b.pending[1:]
			continue
		}
		c.out.push(sigCmd{kind: sigExtra, extra: WebRTCExtraInfo{RTCIceCandidates: cands}, cands: b.pending[:n:n]})
		b.markSent(b.pending[:n])
		b.pending = b.pending[n:]
	}
	if final && b.extrasTicker != nil {
		b.extrasTicker.Stop()
		b.extrasTicker = nil
	}
}

func extraInfo(cands string) any { return WebRTCExtraInfo{RTCIceCandidates: cands} }

// fit returns how many of cands fit into one chat message of at most
// MaxMessageSize bytes, and their encoding: encode turns candidates into
// the payload string, build wraps it in the command's argument.
func (c *Call) fit(cands []rtcpayload.Candidate, build func(string) any, encode func([]rtcpayload.Candidate) (string, error)) (int, string, error) {
	limit := c.cfg.MaxMessageSize
	for n := len(cands); n >= 0; n-- {
		enc, err := encode(cands[:n])
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
