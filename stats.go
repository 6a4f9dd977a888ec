package smpcall

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// streamCounters are one media stream's counters, updated by its media
// goroutines and read by Stats.
type streamCounters struct {
	framesSent, bytesSent                atomic.Uint64
	framesReceived, bytesReceived        atomic.Uint64
	decrypted, decryptFailed, framesLost atomic.Uint64
	keyFramesReceived, keyFrameRequests  atomic.Uint64
	pliSent                              atomic.Uint64
	packetsRecovered, packetsLate        atomic.Uint64

	// Peer media detection: when the peer's last frame came, and whether
	// the source is considered on.
	lastFrame atomic.Int64
	peerOn    atomic.Bool
	// remoteSSRC is the SSRC of the peer's track (0 until it appears).
	remoteSSRC atomic.Uint32
}

// StreamStats are the counters of one media source of a call.
type StreamStats struct {
	// Source is the stream these counters are for.
	Source CallMediaSource
	// FramesSent and BytesSent count frames this side sent (bytes before encryption).
	FramesSent, BytesSent uint64
	// FramesReceived and BytesReceived count frames delivered to the sink
	// (after decryption).
	FramesReceived, BytesReceived uint64
	// Decrypted counts frames that passed authentication; DecryptFailed
	// frames that did not (dropped, never delivered).
	Decrypted, DecryptFailed uint64
	// FramesLost counts frames given up because packets were missing (for
	// video also the delta frames dropped until the next key frame, which
	// could not be decoded).
	FramesLost uint64
	// PacketsRecovered counts packets that arrived out of order or were
	// retransmitted after a NACK in time to be used; PacketsLate those that
	// came after their frame had been given up.
	PacketsRecovered, PacketsLate uint64
	// KeyFramesReceived counts received VP8 key frames.
	KeyFramesReceived uint64
	// KeyFrameRequests counts PLI/FIR received from the peer; PLISent those we sent.
	KeyFrameRequests, PLISent uint64
	// PacketsReceived, PacketsLost and Jitter describe the RTP stream from
	// the peer (pion's inbound-rtp statistics; jitter in time units).
	PacketsReceived uint32
	// PacketsLost is pion's estimate of the packets lost so far; it can be
	// negative when more packets arrive than were expected.
	PacketsLost int32
	// Jitter is the packets' interarrival jitter.
	Jitter time.Duration
}

// CallStats is a snapshot of a call's counters.
type CallStats struct {
	// Streams holds the counters of each source, in MediaSources order.
	Streams [numStreams]StreamStats
	// Duration is the time since the call connected (0 before).
	Duration time.Duration
	// RTT is the round-trip time from the peer's RTCP reports, or of the
	// selected ICE candidate pair until there is one; 0 until measured and
	// while reconnecting.
	RTT time.Duration
	// Info is the selected candidate pair.
	Info ConnectionInfo
	// DroppedEvents counts events of this call that nobody read in time
	// (see Call.Events).
	DroppedEvents uint64
}

// Stats returns a snapshot of the call's counters. Safe at any time.
func (c *Call) Stats() CallStats {
	var st CallStats
	for _, s := range streams {
		sc := &c.stats[s]
		st.Streams[s] = StreamStats{
			Source:     s.source(),
			FramesSent: sc.framesSent.Load(), BytesSent: sc.bytesSent.Load(),
			FramesReceived: sc.framesReceived.Load(), BytesReceived: sc.bytesReceived.Load(),
			Decrypted: sc.decrypted.Load(), DecryptFailed: sc.decryptFailed.Load(), FramesLost: sc.framesLost.Load(),
			KeyFramesReceived: sc.keyFramesReceived.Load(), KeyFrameRequests: sc.keyFrameRequests.Load(), PLISent: sc.pliSent.Load(),
			PacketsRecovered: sc.packetsRecovered.Load(), PacketsLate: sc.packetsLate.Load(),
		}
	}
	if sess := c.session.Load(); sess != nil && !c.over.Load() {
		for _, ps := range sess.pc.GetStats() {
			switch ps := ps.(type) {
			case webrtc.InboundRTPStreamStats:
				if s, ok := streamOfMid(ps.Mid); ok {
					st.Streams[s].PacketsReceived = ps.PacketsReceived
					st.Streams[s].PacketsLost = ps.PacketsLost
					st.Streams[s].Jitter = time.Duration(ps.Jitter * float64(time.Second))
				}
			case webrtc.ICECandidatePairStats:
				if ps.Nominated && ps.CurrentRoundTripTime > 0 {
					st.RTT = time.Duration(ps.CurrentRoundTripTime * float64(time.Second))
				}
			}
		}
	}
	if rtt := c.rtt.Load(); rtt > 0 {
		st.RTT = time.Duration(rtt) // from RTCP reports: it follows the media path
	}
	snap := c.snap.Load()
	if snap.reconnecting {
		st.RTT = 0 // the last measurement says nothing about a path that is down
	}
	if !snap.connectedAt.IsZero() {
		st.Duration = time.Since(snap.connectedAt)
	}
	st.Info = snap.info
	st.DroppedEvents = c.events.Dropped()
	return st
}

// RequestKeyFrame asks the peer for a key frame on one of its video
// streams (an RTCP PLI), e.g. when the embedder's decoder lost its state.
// Errors: not a video source, no frames from that stream yet, ErrCallEnded.
func (c *Call) RequestKeyFrame(src CallMediaSource) error {
	s, ok := streamOf(src)
	if !ok || !s.video() {
		return fmt.Errorf("smpcall: %q is not a video source", src)
	}
	sess := c.session.Load()
	if sess == nil || c.over.Load() {
		return ErrCallEnded
	}
	ssrc := c.stats[s].remoteSSRC.Load()
	if ssrc == 0 {
		return fmt.Errorf("smpcall: no %s stream from the peer yet", src)
	}
	if err := sess.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		return fmt.Errorf("smpcall: request key frame: %w", err)
	}
	c.stats[s].pliSent.Add(1)
	return nil
}
