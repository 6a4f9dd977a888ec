// Package video defines the video frames a call sends and receives (one
// whole VP8 frame each) and the Source and Sink interfaces an embedder
// implements or uses to put video into a call and get it out.
package video

import (
	"context"
	"time"
)

// Frame is one encoded VP8 frame (RFC 6386) and the time it covers.
type Frame struct {
	Data []byte
	// KeyFrame is true for a VP8 key frame (P bit of the first byte clear,
	// RFC 6386 §9.1). Received frames have it set from the data.
	KeyFrame bool
	// Duration is the frame's display time; 0 means 1/30 s.
	Duration time.Duration
}

// DefaultDuration is the duration assumed for frames that do not say.
const DefaultDuration = time.Second / 30

// IsKeyFrame reports whether data starts a VP8 key frame.
func IsKeyFrame(data []byte) bool { return len(data) > 0 && data[0]&1 == 0 }

// Source produces the frames a call sends; see audio.Source for the
// contract, which is the same.
type Source interface {
	ReadFrame(ctx context.Context) (Frame, error)
}

// KeyFrameRequester is implemented by sources that can produce a key frame
// on demand. The call asks when the peer sends PLI or FIR (rate-limited);
// RequestKeyFrame must not block and may be called from any goroutine.
type KeyFrameRequester interface {
	RequestKeyFrame()
}

// Sink consumes the frames a call receives, already decrypted; see
// audio.Sink for the contract, which is the same.
type Sink interface {
	WriteFrame(Frame) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Frame) error

// WriteFrame calls f.
func (f SinkFunc) WriteFrame(fr Frame) error { return f(fr) }
