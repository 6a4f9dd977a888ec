package smpcall

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/internal/jitter"
	"github.com/smpcall/smpcall/internal/jsonfield"
	"github.com/smpcall/smpcall/internal/rtcpayload"
)

// This file is the WebRTC negotiation of a call, run by the call's loop:
// the peer connection, the offer (invited side) or answer (inviting side),
// remote candidates, and the connection state.

// Codec settings that Chrome and the SimpleX page accept without SDP
// surgery (docs/architecture.md, "Verified against the real SimpleX call page").
const (
	opusPayloadType = 111
	vp8PayloadType  = 96
)

// nackInterval is how often pion's NACK generator asks for missing
// packets; the receive buffers' wait is computed from it.
const nackInterval = jitter.DefaultNACKInterval

// protocolErr marks an error about what the peer or the core sent.
func protocolErr(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrProtocol, fmt.Errorf(format, args...))
}

// newPeerConnection builds this call's pion peer connection from the
// Client's shared API and routes its callbacks to the loop.
func (c *Call) newPeerConnection() error {
	cfg := c.cfg
	api, rc := cfg.pion.api, cfg.pion.rc
	// pion keeps the configuration's slices; give each call its own.
	rc.ICEServers = append([]webrtc.ICEServer(nil), rc.ICEServers...)
	pc, err := api.NewPeerConnection(rc)
	if err != nil {
		return fmt.Errorf("peer connection: %w", err)
	}
	c.loop.pc = pc
	c.loop.batch.expect = firstBatchTypes(cfg.ICEServers, cfg.RelayOnly)
	pc.OnICECandidate(func(ic *webrtc.ICECandidate) { c.post(candMsg{ic}) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { c.post(connStateMsg{s}) })
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) { c.post(trackMsg{t, r}) })
	if cfg.ConnectTimeout > 0 {
		c.loop.connectTimer = time.NewTimer(cfg.ConnectTimeout)
	}
	return nil
}

func (c *Call) newTrack(s stream) (*webrtc.TrackLocalStaticSample, error) {
	capab := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	if s.video() {
		capab = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	}
	t, err := webrtc.NewTrackLocalStaticSample(capab, string(s.source()), "smpcall")
	if err != nil {
		return nil, err
	}
	c.loop.tracks[s] = t
	return t, nil
}

// startOffer is the invited party's side (protocol §6.4): exactly four
// transceivers in mid order — mic audio, camera video (even in audio
// calls), screen audio, screen video — each with a sender.
func (c *Call) startOffer() error {
	if err := c.useKey(c.key); err != nil {
		return err
	}
	if err := c.newPeerConnection(); err != nil {
		return err
	}
	for _, s := range streams {
		t, err := c.newTrack(s)
		if err != nil {
			return err
		}
		if _, err := c.loop.pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
			return fmt.Errorf("transceiver %s: %w", s, err)
		}
	}
	c.startSession()
	offer, err := c.loop.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := c.loop.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	c.loop.localDesc = sdpOnly(offer)
	c.loop.batch.start(c.cfg.ICE.InitialDelay)
	return nil
}

// sdpOnly keeps what the loop needs of a description it made: the type
// and the SDP text (icebatch.go sends it). pion parses the description
// again in SetLocalDescription and keeps its own; the value CreateOffer or
// CreateAnswer returned would hold on to a second parse tree for the
// call's life (about 6 KB for the four m-lines).
func sdpOnly(d webrtc.SessionDescription) *webrtc.SessionDescription {
	return &webrtc.SessionDescription{Type: d.Type, SDP: d.SDP}
}

// useKey sets up frame encryption, or refuses a call without it unless the
// embedder allowed that.
func (c *Call) useKey(key *SharedKey) error {
	if key == nil {
		if !c.cfg.AllowUnencrypted {
			return ErrUnencrypted
		}
		c.log.Warn("smpcall: call is not frame-encrypted (allowed by config)")
		return nil
	}
	ci, err := framecrypt.New(key[:])
	if err != nil {
		return protocolErr("shared key: %w", err)
	}
	c.loop.cipher = ci
	c.loop.snap.encrypted = true
	c.publish()
	return nil
}

// onOffer is the inviting party's side: apply the offer, attach a sender to
// every m-line that exists (1, 2 or 4 of them), and answer sendrecv.
func (c *Call) onOffer(ev *CallOfferEvent) error {
	if c.loop.pc != nil {
		return nil // the core never delivers a second offer; be safe
	}
	key := ev.SharedKey
	if ev.AskConfirmation {
		// The peer's offer says it will not encrypt; a key it might still
		// have sent would only make its page drop our frames (protocol §5.1).
		key = nil
	}
	if err := c.useKey(key); err != nil {
		return err
	}
	sess, err := rtcpayload.DecodeSession(ev.Offer.RTCSession)
	if err != nil {
		return protocolErr("offer: %w", err)
	}
	if sess.Type != "offer" {
		return protocolErr("rtcSession: expected an offer, got %s", jsonfield.Quote(sess.Type))
	}
	if c.loop.cipher != nil && !videoHasVP8(sess.SDP) {
		return protocolErr("offer: video without VP8, which frame encryption requires (protocol §7.3)")
	}
	cands, err := rtcpayload.DecodeCandidates(ev.Offer.RTCIceCandidates)
	if err != nil && !errors.Is(err, rtcpayload.ErrNotCandidateList) {
		return protocolErr("offer candidates: %w", err)
	}
	if err := c.newPeerConnection(); err != nil {
		return err
	}
	if err := c.loop.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sess.SDP}); err != nil {
		return protocolErr("apply offer: %w", err)
	}
	c.loop.remoteSet = true
	c.loop.peerReconnect = sess.Reconnect
	c.addRemote(cands)
	if err := c.attachAnswerTracks(); err != nil {
		return err
	}
	c.startSession()
	answer, err := c.loop.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	if err := c.loop.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	c.loop.localDesc = sdpOnly(answer)
	c.loop.batch.start(c.cfg.ICE.InitialDelay)
	return nil
}

// attachAnswerTracks puts a sender on every m-line of the offer, by mid
// for current peers ("0"–"3") and by kind for older ones.
func (c *Call) attachAnswerTracks() error {
	audioNext, videoNext := streamMic, streamCamera
	for _, tr := range c.loop.pc.GetTransceivers() {
		s, ok := streamOfMid(tr.Mid())
		if !ok {
			// Older clients: first audio is the mic, first video the camera.
			if tr.Kind() == webrtc.RTPCodecTypeAudio {
				s, audioNext = audioNext, audioNext+2
			} else {
				s, videoNext = videoNext, videoNext+2
			}
			if s >= numStreams {
				continue
			}
		}
		if c.loop.tracks[s] != nil || s.video() != (tr.Kind() == webrtc.RTPCodecTypeVideo) {
			continue
		}
		t, err := c.newTrack(s)
		if err != nil {
			return err
		}
		// AddTrack takes the first transceiver of this kind without a sender,
		// which is this one, since we go in m-line order.
		if _, err := c.loop.pc.AddTrack(t); err != nil {
			return fmt.Errorf("attach %s: %w", s, err)
		}
	}
	return nil
}

// streamOfReceiver finds which stream a remote track belongs to.
func (c *Call) streamOfReceiver(r *webrtc.RTPReceiver) (stream, bool) {
	for _, tr := range c.loop.pc.GetTransceivers() {
		if tr.Receiver() != r {
			continue
		}
		if s, ok := streamOfMid(tr.Mid()); ok {
			return s, true
		}
		// Older peers' mids: by kind.
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			return streamCamera, true
		}
		return streamMic, true
	}
	return 0, false
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

func (c *Call) onAnswer(ev *CallAnswerEvent) error {
	if c.loop.pc == nil || c.loop.remoteSet {
		return nil
	}
	sess, err := rtcpayload.DecodeSession(ev.Answer.RTCSession)
	if err != nil {
		return protocolErr("answer: %w", err)
	}
	if sess.Type != "answer" {
		return protocolErr("rtcSession: expected an answer, got %s", jsonfield.Quote(sess.Type))
	}
	// An answer has the offer's m-lines, in order (RFC 3264 §6); pion
	// accepted one with fewer and connected on what was left.
	if want, got := mlineKinds(c.loop.localDesc.SDP), mlineKinds(sess.SDP); want != got {
		return protocolErr("answer: m-lines %s, the offer has %s", got, want)
	}
	cands, err := rtcpayload.DecodeCandidates(ev.Answer.RTCIceCandidates)
	if err != nil && !errors.Is(err, rtcpayload.ErrNotCandidateList) {
		return protocolErr("answer candidates: %w", err)
	}
	if err := c.loop.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sess.SDP}); err != nil {
		return protocolErr("apply answer: %w", err)
	}
	c.loop.remoteSet = true
	c.loop.peerReconnect = sess.Reconnect
	c.addRemote(c.loop.remoteQueue)
	c.loop.remoteQueue = nil
	c.addRemote(cands)
	return nil
}

// maxQueuedRemote bounds the candidates kept before the remote description
// is set; a real peer sends a few dozen.
const maxQueuedRemote = 256

func (c *Call) onExtra(ev *CallExtraInfoEvent) {
	cands, err := rtcpayload.DecodeCandidates(ev.ExtraInfo.RTCIceCandidates)
	if errors.Is(err, rtcpayload.ErrNotCandidateList) {
		c.onRestartMessage(ev.ExtraInfo.RTCIceCandidates)
		return
	}
	if err != nil {
		// Bad candidates do not end a call that may still connect.
		c.log.Warn("smpcall: bad extra candidates", "err", err)
		return
	}
	if !c.loop.remoteSet {
		if len(c.loop.remoteQueue)+len(cands) > maxQueuedRemote {
			c.log.Warn("smpcall: too many candidates before the answer; dropped", "count", len(cands))
			return
		}
		c.loop.remoteQueue = append(c.loop.remoteQueue, cands...)
		return
	}
	c.addRemote(cands)
}

// maxRemoteCandidates bounds the peer's candidates handed to pion in one
// ICE generation. pion keeps every remote candidate, pairs it with each
// local one and compares each new one with all it has, so a peer that
// floods x.call.extra with distinct candidates grew memory and CPU without
// bound (53,836 candidates held after a flood in TestHostilePeerExtraFlood).
// A real peer sends a few dozen per generation.
const maxRemoteCandidates = 512

func (c *Call) addRemote(cands []rtcpayload.Candidate) {
	if c.loop.remoteGen != c.loop.restart.gen {
		c.loop.remoteGen, c.loop.remoteAdded = c.loop.restart.gen, 0
	}
	for _, rc := range cands {
		c.loop.remoteAdded++ // dropped ones too, so that the warning comes once
		if c.loop.remoteAdded > maxRemoteCandidates {
			if c.loop.remoteAdded == maxRemoteCandidates+1 {
				c.log.Warn("smpcall: too many remote candidates; the rest are dropped", "limit", maxRemoteCandidates)
			}
			continue
		}
		init := webrtc.ICECandidateInit{Candidate: rc.Candidate, SDPMid: rc.SDPMid, SDPMLineIndex: rc.SDPMLineIndex, UsernameFragment: rc.UsernameFragment}
		if err := c.loop.pc.AddICECandidate(init); err != nil {
			c.log.Info("smpcall: remote candidate not usable", "err", err)
		}
	}
}

// --- connection state ----------------------------------------------------

func (c *Call) onConnState(s webrtc.PeerConnectionState) {
	if c.loop.connected {
		// An established call: the core hears nothing of interruptions
		// (protocol §6.8); "disconnected" would end its call item for good
		// (protocol §9), and the end of the call reports the outcome.
		switch s {
		case webrtc.PeerConnectionStateConnected:
			c.onPathUp()
		case webrtc.PeerConnectionStateDisconnected:
			c.onPathDown()
		case webrtc.PeerConnectionStateFailed:
			c.onPathDown()
			if c.reconnectable() && c.Incoming() {
				c.scheduleRestart(restartRetry) // this attempt's checks ran out; try again soon
			} else if !c.reconnectable() {
				c.terminate(ReasonReconnectGaveUp, errReconnectGaveUp)
			}
		}
		return
	}
	var status WebRTCCallStatus
	switch s {
	case webrtc.PeerConnectionStateConnecting:
		status = StatusConnecting
	case webrtc.PeerConnectionStateConnected:
		status = StatusConnected
	case webrtc.PeerConnectionStateFailed:
		status = StatusFailed
	default:
		return // new, disconnected, closed: the core accepts only four words
	}
	c.out.push(sigCmd{kind: sigStatus, status: status})
	switch s {
	case webrtc.PeerConnectionStateConnected:
		c.onConnected()
	case webrtc.PeerConnectionStateFailed:
		c.terminate(ReasonConnectionFailed, ErrConnectionFailed)
	}
}

// selectedPair describes the path the call uses now.
func (c *Call) selectedPair() ConnectionInfo {
	for _, tr := range c.loop.pc.GetTransceivers() {
		if s := tr.Sender(); s != nil && s.Transport() != nil {
			pair, err := s.Transport().ICETransport().GetSelectedCandidatePair()
			if i, err2 := connectionInfo(pair); err == nil && err2 == nil {
				return i
			}
		}
	}
	return ConnectionInfo{}
}

func (c *Call) onConnected() {
	if c.loop.connected {
		return
	}
	c.loop.connected = true
	if c.loop.connectTimer != nil {
		c.loop.connectTimer.Stop()
		c.loop.connectTimer = nil
	}
	info := c.selectedPair()
	c.loop.snap.info = info
	c.loop.snap.connectedAt = time.Now()
	c.publish()
	c.log.Info("smpcall: call connected", "path", info.String(), "encrypted", c.loop.snap.encrypted)
	// Media starts only now: pion drops samples written before SRTP is up.
	c.startSenders()
	if c.cfg.PeerMediaTimeout > 0 {
		c.loop.peerTick = time.NewTicker(max(c.cfg.PeerMediaTimeout/12, 10*time.Millisecond))
	}
	close(c.connected)
	c.events.Push(&CallConnectedEvent{Contact: c.contact, Info: info, Encrypted: c.loop.snap.encrypted})
}
