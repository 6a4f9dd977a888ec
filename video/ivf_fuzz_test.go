package video

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// FuzzIVFSource feeds arbitrary bytes to IVFSource. It must never panic or
// hang, every error must be io.EOF or match ErrInvalidIVF, every frame must
// be sane, and the frames an IVFSink keeps must read back byte-identical.
//
// mode bits: 1 Loop, 2 a reader that cannot seek, 4 request key frames.
// The seed corpus is in testdata/fuzz/FuzzIVFSource: prefixes of
// testdata/media/video.ivf (at most a few frames) and mutations of them.
// The whole fixture is deliberately not a seed: the fuzzer spends most of
// its time minimising inputs that large. Run with
//
//	go test -run '^$' -fuzz FuzzIVFSource -fuzztime 60s ./video/
func FuzzIVFSource(f *testing.F) {
	f.Fuzz(checkIVFSourceInput)
}

func checkIVFSourceInput(t *testing.T, data []byte, mode byte) {
	{
		var r io.Reader = bytes.NewReader(data)
		if mode&2 != 0 {
			r = onlyReader{r}
		}
		s, err := NewIVFSource(r, &IVFSourceOptions{Loop: mode&1 != 0})
		if err != nil {
			if !errors.Is(err, ErrInvalidIVF) {
				t.Fatalf("open: error %v does not match ErrInvalidIVF", err)
			}
			return
		}
		defer s.Close()
		h := s.Header()
		if h.FourCC != "VP80" || h.TimebaseDenominator == 0 || h.TimebaseNumerator == 0 {
			t.Fatalf("accepted header %+v", h)
		}

		var sinkBuf bytes.Buffer
		sink, err := NewIVFSink(&sinkBuf, nil)
		if err != nil {
			t.Fatal(err)
		}
		var kept [][]byte
		ctx := context.Background()
		for i := range 300 {
			if mode&4 != 0 && i%3 == 1 {
				s.RequestKeyFrame()
			}
			fr, err := s.ReadFrame(ctx)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrInvalidIVF) {
					t.Fatalf("frame %d: unexpected error %v", i, err)
				}
				if mode&1 != 0 && err == io.EOF {
					t.Fatalf("frame %d: io.EOF with Loop", i)
				}
				break
			}
			if len(fr.Data) == 0 || len(fr.Data) > IVFMaxFrameSize {
				t.Fatalf("frame %d: %d bytes", i, len(fr.Data))
			}
			if fr.KeyFrame != IsKeyFrame(fr.Data) {
				t.Fatalf("frame %d: KeyFrame %v for first byte %#x", i, fr.KeyFrame, fr.Data[0])
			}
			if fr.Duration <= 0 || fr.Duration > time.Hour {
				t.Fatalf("frame %d: duration %v", i, fr.Duration)
			}
			if mode&4 != 0 && i%3 == 1 && !fr.KeyFrame {
				t.Fatalf("frame %d: key frame requested, got a delta frame", i)
			}
			before := sink.Frames()
			if err := sink.WriteFrame(fr); err != nil {
				t.Fatalf("sink: %v", err)
			}
			if sink.Frames() > before {
				kept = append(kept, fr.Data)
			}
		}
		if err := sink.Close(); err != nil {
			t.Fatalf("sink close: %v", err)
		}

		back, err := NewIVFSource(bytes.NewReader(sinkBuf.Bytes()), nil)
		if err != nil {
			t.Fatalf("reading the sink's output: %v", err)
		}
		defer back.Close()
		for i, want := range kept {
			fr, err := back.ReadFrame(ctx)
			if err != nil {
				t.Fatalf("sink output frame %d: %v", i, err)
			}
			if !bytes.Equal(fr.Data, want) {
				t.Fatalf("sink output frame %d differs", i)
			}
		}
		if _, err := back.ReadFrame(ctx); err != io.EOF {
			t.Fatalf("sink output: extra frames or error %v", err)
		}
	}
}
