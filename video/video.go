// Package video defines the video frames a call sends and receives (one
// whole VP8 frame each) and the Source and Sink interfaces an embedder
// implements or uses to put video into a call and get it out.
//
// A call takes a Source for each video stream it sends, the camera and the
// screen (smpcall.Sources), and a Sink for each stream it receives
// (smpcall.Sinks). Frames are encoded VP8 frames, the only video codec that
// SimpleX's frame encryption supports: the SDK neither encodes nor decodes
// video. A Source that also implements KeyFrameRequester is asked for a key
// frame when the peer asks for one (RTCP PLI or FIR). The package provides
// two ready-made ones:
//
//   - IVFSource reads the frames of an IVF file (vpxenc's output),
//     optionally paced in real time and looped, and skips ahead to a key
//     frame when asked for one;
//   - IVFSink writes received frames to an IVF file that vpxdec and other
//     players read.
//
// ExampleOpenIVFSource copies a file from a source to a sink, as a call does
// from a camera file to a recording.
package video

import (
	"context"
	"time"
)

// Frame is one encoded VP8 frame (RFC 6386) and the time it covers.
type Frame struct {
	// Data is the VP8 frame, without any container framing.
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
	// ReadFrame returns the next frame to send; io.EOF ends the stream.
	ReadFrame(ctx context.Context) (Frame, error)
}

// KeyFrameRequester is implemented by sources that can produce a key frame
// on demand. The call asks when the peer sends PLI or FIR (rate-limited);
// RequestKeyFrame must not block and may be called from any goroutine.
type KeyFrameRequester interface {
	// RequestKeyFrame asks the source for a key frame as soon as it can give
	// one.
	RequestKeyFrame()
}

// Sink consumes the frames a call receives, already decrypted; see
// audio.Sink for the contract, which is the same.
type Sink interface {
	// WriteFrame takes one received frame; an error stops delivery to this
	// Sink.
	WriteFrame(Frame) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Frame) error

// WriteFrame calls f.
func (f SinkFunc) WriteFrame(fr Frame) error { return f(fr) }
