// Package audio defines the audio frames a call sends and receives (one
// Opus packet each) and the Source and Sink interfaces an embedder
// implements or uses to put audio into a call and get it out.
//
// A call takes a Source for each audio stream it sends (smpcall.Sources) and
// a Sink for each stream it receives (smpcall.Sinks). Frames are encoded
// Opus packets: the SDK neither encodes nor decodes audio. The package
// provides three ready-made ones:
//
//   - OggSource reads the packets of an Ogg Opus file (opusenc's output),
//     optionally paced in real time and looped;
//   - OggSink writes received packets to an Ogg Opus file that opusdec and
//     other players read;
//   - SilenceSource sends 20 ms silence packets.
//
// ExampleOpenOggSource copies a file from a source to a sink, as a call does
// from a microphone file to a recording; ExampleNewSilenceSource shows the
// silence source.
package audio

import (
	"context"
	"time"
)

// Frame is one encoded Opus packet (RFC 6716) and the audio time it covers.
type Frame struct {
	// Data is the Opus packet, without any container framing.
	Data []byte
	// Duration is the audio time of the packet; 0 means 20 ms.
	Duration time.Duration
}

// DefaultDuration is the duration assumed for frames that do not say.
const DefaultDuration = 20 * time.Millisecond

// Source produces the frames a call sends.
//
// Concurrency: a call reads a Source from one goroutine; ReadFrame may block
// until the next frame is due (a live or real-time-paced source) and must
// return promptly with ctx.Err() when ctx ends. io.EOF ends the stream. The
// call encrypts and sends each frame before it asks for the next, so a
// Source may reuse Data's buffer once ReadFrame is called again.
type Source interface {
	// ReadFrame returns the next frame to send; io.EOF ends the stream.
	ReadFrame(ctx context.Context) (Frame, error)
}

// Sink consumes the frames a call receives, already decrypted.
//
// Concurrency: a call writes to a Sink from one goroutine, in order, never
// with a lock held. WriteFrame should not block for long (it holds up that
// stream). Data belongs to the Sink. An error stops delivery to this Sink
// for the rest of the call and is reported in the call's events.
type Sink interface {
	// WriteFrame takes one received frame; an error stops delivery to this
	// Sink.
	WriteFrame(Frame) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Frame) error

// WriteFrame calls f.
func (f SinkFunc) WriteFrame(fr Frame) error { return f(fr) }
