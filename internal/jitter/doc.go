// Package jitter holds received RTP packets until they can be released in
// order: whole VP8 frames for video (RFC 7741) and Opus packets for audio.
//
// It replaces the strict assembler in internal/rtpframe, which declared a
// frame lost at the first sequence gap. Real paths reorder packets, and a
// lost packet usually comes back: pion's NACK generator asks for it and the
// sender's NACK responder resends the original packet (same SSRC and
// sequence number, since RTX is not negotiated). A receiver that gives up
// at the first gap throws away frames that would have been complete a round
// trip later, and one that hands on the delta frames after a real loss
// feeds the decoder frames it cannot decode (vpxdec's "corrupted frames").
// The design follows libwebrtc's receive path: a packet buffer indexed by
// sequence number that finds complete frames, and a frame buffer that
// releases them in decode order and waits for a key frame after a loss.
//
// # Time is an input
//
// Nothing in this package starts a goroutine or a timer, and nothing reads
// the clock: Push and Pop take the current time, and NextDeadline tells the
// caller when to call Pop again if no packet arrives before then. A track's
// reading goroutine uses it like this:
//
//	v := jitter.NewVideo(jitter.VideoConfig{})
//	for {
//		if d, ok := v.NextDeadline(); ok {
//			track.SetReadDeadline(d)
//		} else {
//			track.SetReadDeadline(time.Time{})
//		}
//		n, _, err := track.Read(buf)        // a timeout is a net.Error with Timeout() true
//		now := time.Now()
//		if err == nil && pkt.Unmarshal(buf[:n]) == nil {
//			v.Push(&pkt, now)              // Push copies what it keeps
//		} else if !isTimeout(err) {
//			return
//		}
//		for {
//			f, ok := v.Pop(now)
//			if !ok {
//				break
//			}
//			deliver(f.Data)                // valid until the next call on v
//		}
//		if v.NeedKeyFrame() {
//			sendPLI()                      // rate-limited by the caller
//		}
//	}
//
// This keeps every test exact: a test drives the buffers with synthetic
// times and checks what comes out, with no sleeps and no flakiness.
//
// # Memory
//
// Packets live in a ring indexed by sequence number (no maps), payload
// buffers are recycled through a small free list, and frames are assembled
// into one reused buffer, so the steady state allocates nothing. Everything
// a remote peer can grow is bounded (packets, bytes, frame size); when a
// bound is hit the oldest data is dropped and counted (Evicted).
package jitter
