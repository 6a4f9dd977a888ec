package main

import (
	"context"
	"encoding/binary"
	"math"
	"sync/atomic"
	"time"

	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/video"
)

// This file is the media the calls carry: paced sources whose frames carry
// their send time and sequence number, and sinks that count what arrives
// and how late, into one meter per process.

// Frames carry, after a clear prefix, the wall-clock time they were made
// (UnixNano) and the call's frame number. Both ends of a call may live in
// different processes of the same machine, which share the clock.
const (
	stampOffset   = 10 // after a VP8 key frame's 10 clear bytes (protocol §7.1)
	minFrameBytes = stampOffset + 12
)

// buckets is how many one-second buckets the meter keeps; a measurement
// window must be shorter than half of it.
const buckets = 128

// histBin is the latency histogram's resolution; latencies of histBins
// bins and more share the last one.
const (
	histBin  = 250 * time.Microsecond
	histBins = 2000 // 500 ms
)

// meter counts the frames the sources of one process made and its sinks
// received, by the second they were made in, and the latency of the frames
// made inside the current window. Safe for concurrent use; nothing
// allocates per frame.
type meter struct {
	sent, recv [buckets]atomic.Uint64
	// late counts frames received without a valid stamp (never expected).
	bad atomic.Uint64
	// window: frames made in [winStart, winEnd) go into hist.
	winStart, winEnd atomic.Int64
	hist             [histBins]atomic.Uint64
}

func bucketOf(unixNano int64) int { return int(unixNano/int64(time.Second)) % buckets }

// clearAhead zeroes the buckets that the next half of the ring will reuse,
// so that counts from a previous lap never mix in. The ramp calls it at
// the start of every step, before any frame of the step is made.
func (m *meter) clearAhead(now time.Time) {
	s := now.Unix()
	for i := int64(1); i < buckets/2; i++ {
		m.sent[(s+i)%buckets].Store(0)
		m.recv[(s+i)%buckets].Store(0)
	}
}

// setWindow starts a latency window; the histogram starts empty.
func (m *meter) setWindow(start, end time.Time) {
	m.winStart.Store(math.MaxInt64)
	for i := range m.hist {
		m.hist[i].Store(0)
	}
	m.winEnd.Store(end.UnixNano())
	m.winStart.Store(start.UnixNano())
}

func (m *meter) made(stamp int64) { m.sent[bucketOf(stamp)].Add(1) }

// got records a received frame's stamp.
func (m *meter) got(data []byte) {
	if len(data) < minFrameBytes {
		m.bad.Add(1)
		return
	}
	stamp := int64(binary.BigEndian.Uint64(data[stampOffset:]))
	now := time.Now().UnixNano()
	m.recv[bucketOf(stamp)].Add(1)
	if stamp >= m.winStart.Load() && stamp < m.winEnd.Load() {
		bin := int((now - stamp) / int64(histBin))
		m.hist[min(max(bin, 0), histBins-1)].Add(1)
	}
}

// meterSnapshot is a meter's counts for the seconds [from, to), and the
// latency histogram of its window.
type meterSnapshot struct {
	Sent, Received uint64
	Bad            uint64
	Hist           []uint64 // sparse: pairs of bin, count
}

func (m *meter) snapshot(from, to int64) meterSnapshot {
	var s meterSnapshot
	for sec := from; sec < to; sec++ {
		s.Sent += m.sent[sec%buckets].Load()
		s.Received += m.recv[sec%buckets].Load()
	}
	s.Bad = m.bad.Load()
	for i := range m.hist {
		if n := m.hist[i].Load(); n > 0 {
			s.Hist = append(s.Hist, uint64(i), n)
		}
	}
	return s
}

// merge adds o to s.
func (s *meterSnapshot) merge(o meterSnapshot) {
	s.Sent += o.Sent
	s.Received += o.Received
	s.Bad += o.Bad
	dense := make([]uint64, histBins)
	for _, h := range []([]uint64){s.Hist, o.Hist} {
		for i := 0; i+1 < len(h); i += 2 {
			if h[i] < histBins {
				dense[h[i]] += h[i+1]
			}
		}
	}
	s.Hist = s.Hist[:0]
	for i, n := range dense {
		if n > 0 {
			s.Hist = append(s.Hist, uint64(i), n)
		}
	}
}

// quantile returns the latency below which a fraction q of the window's
// frames arrived (the upper edge of its bin).
func (s *meterSnapshot) quantile(q float64) time.Duration {
	var total uint64
	for i := 1; i < len(s.Hist); i += 2 {
		total += s.Hist[i]
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var acc uint64
	for i := 0; i+1 < len(s.Hist); i += 2 {
		acc += s.Hist[i+1]
		if acc >= want {
			return time.Duration(s.Hist[i]+1) * histBin
		}
	}
	return histBins * histBin
}

// mediaSpec is what every call sends each way.
type mediaSpec struct {
	Video bool
	// Bytes is the size of a frame before encryption; Interval the time
	// between frames.
	Bytes    int
	Interval time.Duration
	// KeyEvery makes every n-th video frame a key frame (and any frame
	// after a key-frame request).
	KeyEvery int
}

// source makes stamped frames in real time. One goroutine reads it (the
// SDK's send loop, or a raw pair's sender); RequestKeyFrame may come from
// any goroutine.
type source struct {
	m      *meter
	spec   mediaSpec
	buf    []byte
	next   time.Time
	seq    uint32
	timer  *time.Timer
	keyReq atomic.Bool
}

func newSource(m *meter, spec mediaSpec) *source {
	s := &source{m: m, spec: spec, buf: make([]byte, spec.Bytes)}
	for i := range s.buf {
		s.buf[i] = byte(i * 13)
	}
	return s
}

// frame waits until the next frame is due and returns it. The returned
// slice is reused by the next call.
func (s *source) frame(ctx context.Context) ([]byte, error) {
	now := time.Now()
	switch {
	case s.next.IsZero() || now.Sub(s.next) > time.Second:
		s.next = now // first frame, or far behind: do not burst
	case s.next.After(now):
		if s.timer == nil {
			s.timer = time.NewTimer(s.next.Sub(now))
		} else {
			s.timer.Reset(s.next.Sub(now))
		}
		select {
		case <-s.timer.C:
		case <-ctx.Done():
			s.timer.Stop()
			return nil, ctx.Err()
		}
	}
	s.next = s.next.Add(s.spec.Interval)
	b := s.buf
	if s.spec.Video {
		b[0] = 0x01 // a delta frame (P bit set), RFC 6386 §9.1
		if s.seq%uint32(max(s.spec.KeyEvery, 1)) == 0 || s.keyReq.Swap(false) {
			b[0] = 0x10 // key frame: P bit clear, then the start code
			b[3], b[4], b[5] = 0x9d, 0x01, 0x2a
		}
	} else {
		b[0] = 0x78 // an Opus TOC byte (RFC 6716 §3.1)
	}
	stamp := time.Now().UnixNano()
	binary.BigEndian.PutUint64(b[stampOffset:], uint64(stamp))
	binary.BigEndian.PutUint32(b[stampOffset+8:], s.seq)
	s.seq++
	s.m.made(stamp)
	return b, nil
}

// ReadFrame implements audio.Source.
func (s *source) ReadFrame(ctx context.Context) (audio.Frame, error) {
	b, err := s.frame(ctx)
	return audio.Frame{Data: b, Duration: s.spec.Interval}, err
}

// RequestKeyFrame implements video.KeyFrameRequester.
func (s *source) RequestKeyFrame() { s.keyReq.Store(true) }

// videoSource adapts a source to video.Source.
type videoSource struct{ *source }

func (v videoSource) ReadFrame(ctx context.Context) (video.Frame, error) {
	b, err := v.frame(ctx)
	return video.Frame{Data: b, Duration: v.spec.Interval, KeyFrame: b != nil && b[0]&1 == 0}, err
}

// sink counts received frames into a meter.
type sink struct{ m *meter }

func (s sink) WriteFrame(f audio.Frame) error { s.m.got(f.Data); return nil }

type videoSink struct{ m *meter }

func (s videoSink) WriteFrame(f video.Frame) error { s.m.got(f.Data); return nil }
