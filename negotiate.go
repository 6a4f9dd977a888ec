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
func (k *Call) newPeerConnection() error {
	cfg := k.cfg
	api, rc := cfg.pion.api, cfg.pion.rc
	// pion keeps the configuration's slices; give each call its own.
	rc.ICEServers = append([]webrtc.ICEServer(nil), rc.ICEServers...)
	pc, err := api.NewPeerConnection(rc)
	if err != nil {
		return fmt.Errorf("peer connection: %w", err)
	}
	k.loop.pc = pc
	k.loop.batch.expect = firstBatchTypes(cfg.ICEServers, cfg.RelayOnly)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { k.post(candMsg{c}) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { k.post(connStateMsg{s}) })
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) { k.post(trackMsg{t, r}) })
	if cfg.ConnectTimeout > 0 {
		k.loop.connectTimer = time.NewTimer(cfg.ConnectTimeout)
	}
	return nil
}

func (k *Call) newTrack(s stream) (*webrtc.TrackLocalStaticSample, error) {
	capab := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	if s.video() {
		capab = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	}
	t, err := webrtc.NewTrackLocalStaticSample(capab, string(s.source()), "smpcall")
	if err != nil {
		return nil, err
	}
	k.loop.tracks[s] = t
	return t, nil
}

// startOffer is the invited party's side (protocol §6.4): exactly four
// transceivers in mid order — mic audio, camera video (even in audio
// calls), screen audio, screen video — each with a sender.
func (k *Call) startOffer() error {
	if err := k.useKey(k.key); err != nil {
		return err
	}
	if err := k.newPeerConnection(); err != nil {
		return err
	}
	for _, s := range streams {
		t, err := k.newTrack(s)
		if err != nil {
			return err
		}
		if _, err := k.loop.pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
			return fmt.Errorf("transceiver %s: %w", s, err)
		}
	}
	k.startSession()
	offer, err := k.loop.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := k.loop.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	k.loop.localDesc = sdpOnly(offer)
	k.loop.batch.start(k.cfg.ICE.InitialDelay)
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
func (k *Call) useKey(key *SharedKey) error {
	if key == nil {
		if !k.cfg.AllowUnencrypted {
			return ErrUnencrypted
		}
		k.log.Warn("smpcall: call is not frame-encrypted (allowed by config)")
		return nil
	}
	ci, err := framecrypt.New(key[:])
	if err != nil {
		return protocolErr("shared key: %w", err)
	}
	k.loop.cipher = ci
	k.loop.snap.encrypted = true
	k.publish()
	return nil
}

// onOffer is the inviting party's side: apply the offer, attach a sender to
// every m-line that exists (1, 2 or 4 of them), and answer sendrecv.
func (k *Call) onOffer(ev *CallOfferEvent) error {
	if k.loop.pc != nil {
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
		return protocolErr("offer: %w", err)
	}
	if sess.Type != "offer" {
		return protocolErr("rtcSession: expected an offer, got %s", jsonfield.Quote(sess.Type))
	}
	if k.loop.cipher != nil && !videoHasVP8(sess.SDP) {
		return protocolErr("offer: video without VP8, which frame encryption requires (protocol §7.3)")
	}
	cands, err := rtcpayload.DecodeCandidates(ev.Offer.RTCIceCandidates)
	if err != nil && !errors.Is(err, rtcpayload.ErrNotCandidateList) {
		return protocolErr("offer candidates: %w", err)
	}
	if err := k.newPeerConnection(); err != nil {
		return err
	}
	if err := k.loop.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sess.SDP}); err != nil {
		return protocolErr("apply offer: %w", err)
	}
	k.loop.remoteSet = true
	k.loop.peerReconnect = sess.Reconnect
	k.addRemote(cands)
	if err := k.attachAnswerTracks(); err != nil {
		return err
	}
	k.startSession()
	answer, err := k.loop.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	if err := k.loop.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	k.loop.localDesc = sdpOnly(answer)
	k.loop.batch.start(k.cfg.ICE.InitialDelay)
	return nil
}

// attachAnswerTracks puts a sender on every m-line of the offer, by mid
// for current peers ("0"–"3") and by kind for older ones.
func (k *Call) attachAnswerTracks() error {
	audioNext, videoNext := streamMic, streamCamera
	for _, tr := range k.loop.pc.GetTransceivers() {
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
		if k.loop.tracks[s] != nil || s.video() != (tr.Kind() == webrtc.RTPCodecTypeVideo) {
			continue
		}
		t, err := k.newTrack(s)
		if err != nil {
			return err
		}
		// AddTrack takes the first transceiver of this kind without a sender,
		// which is this one, since we go in m-line order.
		if _, err := k.loop.pc.AddTrack(t); err != nil {
			return fmt.Errorf("attach %s: %w", s, err)
		}
	}
	return nil
}

// streamOfReceiver finds which stream a remote track belongs to.
func (k *Call) streamOfReceiver(r *webrtc.RTPReceiver) (stream, bool) {
	for _, tr := range k.loop.pc.GetTransceivers() {
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

func (k *Call) onAnswer(ev *CallAnswerEvent) error {
	if k.loop.pc == nil || k.loop.remoteSet {
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
	if want, got := mlineKinds(k.loop.localDesc.SDP), mlineKinds(sess.SDP); want != got {
		return protocolErr("answer: m-lines %s, the offer has %s", got, want)
	}
	cands, err := rtcpayload.DecodeCandidates(ev.Answer.RTCIceCandidates)
	if err != nil && !errors.Is(err, rtcpayload.ErrNotCandidateList) {
		return protocolErr("answer candidates: %w", err)
	}
	if err := k.loop.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sess.SDP}); err != nil {
		return protocolErr("apply answer: %w", err)
	}
	k.loop.remoteSet = true
	k.loop.peerReconnect = sess.Reconnect
	k.addRemote(k.loop.remoteQueue)
	k.loop.remoteQueue = nil
	k.addRemote(cands)
	return nil
}

// maxQueuedRemote bounds the candidates kept before the remote description
// is set; a real peer sends a few dozen.
const maxQueuedRemote = 256

func (k *Call) onExtra(ev *CallExtraInfoEvent) {
	cands, err := rtcpayload.DecodeCandidates(ev.ExtraInfo.RTCIceCandidates)
	if errors.Is(err, rtcpayload.ErrNotCandidateList) {
		k.onRestartMessage(ev.ExtraInfo.RTCIceCandidates)
		return
	}
	if err != nil {
		// Bad candidates do not end a call that may still connect.
		k.log.Warn("smpcall: bad extra candidates", "err", err)
		return
	}
	if !k.loop.remoteSet {
		if len(k.loop.remoteQueue)+len(cands) > maxQueuedRemote {
			k.log.Warn("smpcall: too many candidates before the answer; dropped", "count", len(cands))
			return
		}
		k.loop.remoteQueue = append(k.loop.remoteQueue, cands...)
		return
	}
	k.addRemote(cands)
}

// maxRemoteCandidates bounds the peer's candidates handed to pion in one
// ICE generation. pion keeps every remote candidate, pairs it with each
// local one and compares each new one with all it has, so a peer that
// floods x.call.extra with distinct candidates grew memory and CPU without
// bound (53,836 candidates held after a flood in TestHostilePeerExtraFlood).
// A real peer sends a few dozen per generation.
const maxRemoteCandidates = 512

func (k *Call) addRemote(cands []rtcpayload.Candidate) {
	if k.loop.remoteGen != k.loop.restart.gen {
		k.loop.remoteGen, k.loop.remoteAdded = k.loop.restart.gen, 0
	}
	for _, c := range cands {
		k.loop.remoteAdded++ // dropped ones too, so that the warning comes once
		if k.loop.remoteAdded > maxRemoteCandidates {
			if k.loop.remoteAdded == maxRemoteCandidates+1 {
				k.log.Warn("smpcall: too many remote candidates; the rest are dropped", "limit", maxRemoteCandidates)
			}
			continue
		}
		init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
		if err := k.loop.pc.AddICECandidate(init); err != nil {
			k.log.Info("smpcall: remote candidate not usable", "err", err)
		}
	}
}

// --- connection state ----------------------------------------------------

func (k *Call) onConnState(s webrtc.PeerConnectionState) {
	if k.loop.connected {
		// An established call: the core hears nothing of interruptions
		// (protocol §6.8); "disconnected" would end its call item for good
		// (protocol §9), and the end of the call reports the outcome.
		switch s {
		case webrtc.PeerConnectionStateConnected:
			k.onPathUp()
		case webrtc.PeerConnectionStateDisconnected:
			k.onPathDown()
		case webrtc.PeerConnectionStateFailed:
			k.onPathDown()
			if k.reconnectable() && k.Incoming() {
				k.scheduleRestart(restartRetry) // this attempt's checks ran out; try again soon
			} else if !k.reconnectable() {
				k.terminate(ReasonReconnectGaveUp, errReconnectGaveUp)
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
	k.out.push(sigCmd{kind: sigStatus, status: status})
	switch s {
	case webrtc.PeerConnectionStateConnected:
		k.onConnected()
	case webrtc.PeerConnectionStateFailed:
		k.terminate(ReasonConnectionFailed, ErrConnectionFailed)
	}
}

// selectedPair describes the path the call uses now.
func (k *Call) selectedPair() ConnectionInfo {
	for _, tr := range k.loop.pc.GetTransceivers() {
		if s := tr.Sender(); s != nil && s.Transport() != nil {
			pair, err := s.Transport().ICETransport().GetSelectedCandidatePair()
			if i, err2 := connectionInfo(pair); err == nil && err2 == nil {
				return i
			}
		}
	}
	return ConnectionInfo{}
}

func (k *Call) onConnected() {
	if k.loop.connected {
		return
	}
	k.loop.connected = true
	if k.loop.connectTimer != nil {
		k.loop.connectTimer.Stop()
		k.loop.connectTimer = nil
	}
	info := k.selectedPair()
	k.loop.snap.info = info
	k.loop.snap.connectedAt = time.Now()
	k.publish()
	k.log.Info("smpcall: call connected", "path", info.String(), "encrypted", k.loop.snap.encrypted)
	// Media starts only now: pion drops samples written before SRTP is up.
	k.startSenders()
	if k.cfg.PeerMediaTimeout > 0 {
		k.loop.peerTick = time.NewTicker(max(k.cfg.PeerMediaTimeout/12, 10*time.Millisecond))
	}
	close(k.connected)
	k.events.Push(&CallConnectedEvent{Contact: k.contact, Info: info, Encrypted: k.loop.snap.encrypted})
}
