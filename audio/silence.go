package audio

import (
	"context"
	"io"
	"sync"
	"time"
)

// silencePacket is a 20 ms Opus packet of silence: TOC 0xf8 is
// configuration 31 (CELT fullband, 20 ms), mono, code 0 (one frame) (RFC 6716
// §3.1, https://www.rfc-editor.org/rfc/rfc6716#section-3.1); the range
// coded CELT frame 0xff 0xfe decodes with its first symbol, the silence
// flag, set (§4.3), so the decoder outputs 20 ms of digital silence.
var silencePacket = [...]byte{0xf8, 0xff, 0xfe}

// SilencePacket returns a new copy of the 20 ms Opus silence packet that
// SilenceSource produces.
func SilencePacket() []byte { return append([]byte(nil), silencePacket[:]...) }

// SilenceSourceOptions configures a SilenceSource. The zero value (or nil)
// gives an endless, unpaced source.
type SilenceSourceOptions struct {
	// Paced makes ReadFrame wait until each frame is due in real time, 20 ms
	// after the previous one (counted from the first frame, so that slow
	// callers catch up).
	Paced bool
	// Duration ends the stream with io.EOF after this much audio (rounded up
	// to whole 20 ms frames); 0 means never.
	Duration time.Duration
}

// SilenceSource is a Source of 20 ms Opus silence packets (SilencePacket),
// for sending audio when there is nothing to say, or as a test source.
//
// Concurrency: ReadFrame must be called from one goroutine at a time. Close
// may be called from any goroutine, also during a paced wait, which then
// returns ErrOggClosed. Each Frame.Data is a fresh slice the caller owns.
type SilenceSource struct {
	opts      SilenceSourceOptions
	produced  time.Duration
	pace      oggPacer
	done      chan struct{}
	closeOnce sync.Once
}

// NewSilenceSource returns a source of Opus silence; opts may be nil.
func NewSilenceSource(opts *SilenceSourceOptions) *SilenceSource {
	s := &SilenceSource{done: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
	}
	return s
}

// ReadFrame returns the next silence frame, io.EOF after
// SilenceSourceOptions.Duration, ctx.Err() if ctx ends first, or
// ErrOggClosed after Close.
func (s *SilenceSource) ReadFrame(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	select {
	case <-s.done:
		return Frame{}, ErrOggClosed
	default:
	}
	if s.opts.Duration > 0 && s.produced >= s.opts.Duration {
		return Frame{}, io.EOF
	}
	if s.opts.Paced {
		if err := s.pace.wait(ctx, s.done); err != nil {
			return Frame{}, err
		}
	}
	s.pace.advance(DefaultDuration)
	s.produced += DefaultDuration
	return Frame{Data: SilencePacket(), Duration: DefaultDuration}, nil
}

// Close ends the source. It is safe to call more than once.
func (s *SilenceSource) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	return nil
}
