package smpcall

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall/internal/rtcpayload"
)

// Reconnection. The SimpleX apps end a call when its connection drops
// (they report "disconnected"); this SDK keeps an established call and
// tries to recover it:
//
//   - The connection counts as interrupted when nothing arrived for
//     pathTimeout. The call reports StateReconnecting (a CallStateEvent on
//     the Call) and sends nothing to the core, as the extension of protocol
//     §6.8 says: "disconnected" would end the core's call item for good
//     (protocol §9).
//   - With a peer that announced the ICE-restart extension ("smpReconnect"
//     in its offer or answer, protocol §6.8), the party that made the
//     original offer restarts ICE after restartGrace, and again every
//     restartAttempt until the connection is back: the restart offer,
//     answer and later candidates travel as x.call.extra whose payload is a
//     JSON object with a generation number. A new path (a network change,
//     a NAT rebinding, a lost TURN allocation) needs this.
//   - With any other peer nothing is sent (it would not understand it); the
//     call waits for the old path to come back.
//   - Either way the call ends with ReasonReconnectGaveUp when it has not
//     recovered within Config.ReconnectBudget, and the frame key stays the
//     same throughout (media resumes as soon as a path works).
const (
	// pathTimeout: no packet for this long means the path is down. Chrome
	// marks a connection as not receiving after 2.5 s; with 1 s keepalives
	// an idle (muted) call sends three in that time.
	pathTimeout    = 3 * time.Second
	keepalive      = time.Second
	restartGrace   = 2 * time.Second  // protocol §6.8
	restartAttempt = 10 * time.Second // protocol §6.8: per attempt
	// restartRetry is the pause before the next attempt when one failed
	// early (its checks ran out while the link was still down).
	restartRetry = time.Second
)

// restartState is the ICE-restart negotiation in progress. Owned by the loop.
type restartState struct {
	gen       int // the generation in force (0: the original negotiation)
	local     bool
	pending   []rtcpayload.Candidate
	sent      bool // the restart offer or answer is out; later candidates go as "candidates"
	batchTime *time.Timer
	attempt   *time.Timer // offerer: when to try again
}

// reconnectable reports whether the call may use the extension: both
// sides announced it.
func (c *Call) reconnectable() bool {
	return !c.cfg.DisableReconnectExtension && c.loop.peerReconnect
}

// onPathDown starts reconnecting an established call.
func (c *Call) onPathDown() {
	if c.loop.reconnecting {
		return
	}
	if c.cfg.ReconnectBudget <= 0 {
		c.terminate(ReasonConnectionFailed, fmt.Errorf("%w: the connection dropped and reconnection is off", ErrConnectionFailed))
		return
	}
	c.loop.reconnecting = true
	c.loop.snap.reconnecting = true
	c.publish()
	c.log.Info("smpcall: connection interrupted; reconnecting", "extension", c.reconnectable(), "budget", c.cfg.ReconnectBudget)
	c.events.Push(&CallStateEvent{Contact: c.contact, From: StateConnected, To: StateReconnecting})
	c.loop.budget = time.NewTimer(c.cfg.ReconnectBudget)
	if c.reconnectable() && c.Incoming() {
		c.scheduleRestart(restartGrace)
	}
}

// onPathUp ends a reconnection: the connection works again.
func (c *Call) onPathUp() {
	if !c.loop.reconnecting {
		return
	}
	c.loop.reconnecting = false
	c.loop.snap.reconnecting = false
	c.loop.snap.info = c.selectedPair()
	c.publish()
	stopTimer(&c.loop.budget)
	stopTimer(&c.loop.restart.attempt)
	c.log.Info("smpcall: reconnected", "path", c.loop.snap.info.String(), "restarts", c.loop.restart.gen)
	c.events.Push(&CallStateEvent{Contact: c.contact, From: StateReconnecting, To: StateConnected})
	// The receivers lost frames meanwhile; their buffers ask for key frames.
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

func (c *Call) scheduleRestart(after time.Duration) {
	stopTimer(&c.loop.restart.attempt)
	c.loop.restart.attempt = time.NewTimer(after)
}

// startRestart makes a restart offer (the original offerer only).
func (c *Call) startRestart() {
	r := &c.loop.restart
	r.attempt = nil
	if !c.loop.reconnecting {
		return
	}
	offer, err := c.loop.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err == nil {
		err = c.loop.pc.SetLocalDescription(offer)
	}
	if err != nil {
		c.log.Warn("smpcall: ICE restart offer", "err", err)
		c.scheduleRestart(restartAttempt)
		return
	}
	r.gen++
	r.local, r.sent, r.pending = true, false, nil
	c.log.Info("smpcall: ICE restart", "generation", r.gen)
	c.restartBatch()
	c.scheduleRestart(restartAttempt)
}

// restartBatch arms the timer after which the restart offer or answer goes
// out with the candidates gathered so far (the 750 ms rule of protocol §6.5).
func (c *Call) restartBatch() {
	r := &c.loop.restart
	stopTimer(&r.batchTime)
	r.batchTime = time.NewTimer(c.cfg.ICE.InitialDelay)
}

// onRestartCandidate collects a candidate gathered for an ICE restart; the
// end of gathering sends the batch at once.
func (c *Call) onRestartCandidate(ic *webrtc.ICECandidate) {
	r := &c.loop.restart
	if ic == nil {
		c.sendRestart()
		return
	}
	if cand, ok := payloadCandidate(ic); ok {
		r.pending = append(r.pending, cand)
		if r.sent {
			c.sendRestart() // trickle what comes after the offer or answer
		}
	}
}

// sendRestart sends the restart offer or answer of the current generation,
// then any candidates gathered since, each message within the size limit.
func (c *Call) sendRestart() {
	r := &c.loop.restart
	if !c.reconnectable() || c.loop.pc == nil {
		return
	}
	if !r.sent {
		desc := c.loop.pc.LocalDescription()
		if desc == nil {
			return
		}
		stopTimer(&r.batchTime)
		t := rtcpayload.RestartAnswer
		if r.local {
			t = rtcpayload.RestartOffer
		}
		n, enc, err := c.fit(r.pending, extraInfo, func(cs []rtcpayload.Candidate) (string, error) {
			return rtcpayload.EncodeRestart(rtcpayload.Restart{T: t, Gen: r.gen, SDP: desc.SDP, Candidates: cs})
		})
		if err != nil {
			c.log.Warn("smpcall: restart message", "err", err)
			return
		}
		c.out.push(sigCmd{kind: sigExtra, extra: WebRTCExtraInfo{RTCIceCandidates: enc}})
		r.pending = r.pending[n:]
		r.sent = true
	}
	for len(r.pending) > 0 {
		n, enc, err := c.fit(r.pending, extraInfo, func(cs []rtcpayload.Candidate) (string, error) {
			return rtcpayload.EncodeRestart(rtcpayload.Restart{T: rtcpayload.RestartCands, Gen: r.gen, Candidates: cs})
		})
		if err != nil || n == 0 {
			r.pending = r.pending[1:]
			continue
		}
		c.out.push(sigCmd{kind: sigExtra, extra: WebRTCExtraInfo{RTCIceCandidates: enc}})
		r.pending = r.pending[n:]
	}
}

// onRestartMessage handles an x.call.extra that carries an ICE-restart
// message instead of a candidate list.
func (c *Call) onRestartMessage(payload string) {
	if !c.reconnectable() {
		c.log.Info("smpcall: ignoring an ICE-restart message (extension not negotiated)")
		return
	}
	m, err := rtcpayload.DecodeRestart(payload)
	if err != nil {
		c.log.Warn("smpcall: bad ICE-restart message", "err", err)
		return
	}
	r := &c.loop.restart
	switch m.T {
	case rtcpayload.RestartOffer:
		if c.Incoming() || m.Gen <= r.gen {
			return // only the original offerer restarts; an old generation is superseded
		}
		if err := c.sameMLines(m.SDP); err != nil {
			c.terminate(ReasonProtocolError, err)
			return
		}
		if err := c.loop.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
			c.log.Warn("smpcall: apply restart offer", "err", err)
			return
		}
		answer, err := c.loop.pc.CreateAnswer(nil)
		if err == nil {
			err = c.loop.pc.SetLocalDescription(answer)
		}
		if err != nil {
			c.log.Warn("smpcall: restart answer", "err", err)
			return
		}
		r.gen, r.local, r.sent, r.pending = m.Gen, false, false, nil
		c.addRemote(m.Candidates)
		c.restartBatch()
	case rtcpayload.RestartAnswer:
		if !r.local || m.Gen != r.gen {
			return
		}
		if err := c.sameMLines(m.SDP); err != nil {
			c.terminate(ReasonProtocolError, err)
			return
		}
		if err := c.loop.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
			c.log.Warn("smpcall: apply restart answer", "err", err)
			return
		}
		c.addRemote(m.Candidates)
	case rtcpayload.RestartCands:
		if m.Gen == r.gen {
			c.addRemote(m.Candidates)
		}
	}
}

// sameMLines refuses a restart that changes the session's m-lines (protocol
// §6.8: such a restart ends the call).
func (c *Call) sameMLines(sdp string) error {
	cur := c.loop.pc.RemoteDescription()
	if cur == nil {
		return nil
	}
	if a, b := mlineKinds(cur.SDP), mlineKinds(sdp); a != b {
		return fmt.Errorf("%w: an ICE restart changes the m-lines (%s → %s)", ErrProtocol, a, b)
	}
	return nil
}

func mlineKinds(sdp string) string {
	var kinds []string
	for _, l := range strings.Split(strings.ReplaceAll(sdp, "\r\n", "\n"), "\n") {
		if strings.HasPrefix(l, "m=") {
			kind, _, _ := strings.Cut(l[2:], " ")
			kinds = append(kinds, kind)
		}
	}
	return strings.Join(kinds, ",")
}

// errReconnectGaveUp is the error behind ReasonReconnectGaveUp.
var errReconnectGaveUp = errors.New("smpcall: the connection did not come back within the reconnection budget")
