package video

// IVF is the simple container libvpx's vpxenc and vpxdec use for raw VP8
// frames: a 32-byte file header, then for each frame a 12-byte frame header
// (frame size and presentation timestamp) followed by the frame. It has no
// RFC; the layout is that of libvpx (ivfdec.c / ivfenc.c), summarised at
// https://wiki.multimedia.cx/index.php/Duck_IVF. All integers are little
// endian:
//
//	file header (32 bytes)
//	 0  4  signature "DKIF"
//	 4  2  version, 0
//	 6  2  header size, 32
//	 8  4  codec FourCC, "VP80" for VP8
//	12  2  width in pixels
//	14  2  height in pixels
//	16  4  timebase denominator (ticks per second, "rate")
//	20  4  timebase numerator ("scale"); one tick is numerator/denominator s
//	24  4  frame count (writers that cannot seek leave it stale)
//	28  4  unused
//
//	frame header (12 bytes), then size bytes of VP8 frame (RFC 6386)
//	 0  4  frame size in bytes
//	 4  8  presentation timestamp in ticks
//
// The VP8 frames themselves are described by RFC 6386,
// https://www.rfc-editor.org/rfc/rfc6386: the P bit of the first byte says
// whether a frame is a key frame (§9.1), and a key frame carries the start
// code 9d 01 2a and the picture size in its bytes 3–9 (§9.1, §19.1).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smpcall/smpcall/internal/pace"
)

const (
	ivfSignature       = "DKIF"
	ivfFourCCVP8       = "VP80"
	ivfHeaderSize      = 32
	ivfFrameHeaderSize = 12

	// IVFMaxFrameSize is the largest frame IVFSource accepts and IVFSink
	// writes. A VP8 frame of a call is a few kilobytes to a few hundred; a
	// larger size in a frame header means a corrupt or hostile file.
	IVFMaxFrameSize = 8 << 20

	// ivfMaxLoopBuffer bounds the input an IVFSource with Loop holds in
	// memory when its reader cannot seek back.
	ivfMaxLoopBuffer = 64 << 20

	// ivfMaxFrameDuration bounds a frame duration derived from timestamps;
	// a longer step is treated as unknown (like a step backwards).
	ivfMaxFrameDuration = time.Hour

	// ivfMaxLag is how far a paced IVFSource lets its reader fall behind
	// before it restarts its schedule rather than catch up in a burst.
	ivfMaxLag = time.Second
)

// ErrInvalidIVF is matched (with errors.Is) by every error that reports a
// malformed or unsupported IVF file, as opposed to an I/O error of the
// underlying reader or writer.
var ErrInvalidIVF = errors.New("invalid IVF file")

// IVFFormatError describes what is wrong with an IVF file and where.
// It matches ErrInvalidIVF with errors.Is.
type IVFFormatError struct {
	// Frame is the 0-based index of the frame in the file, or -1 for the
	// file header.
	Frame int
	// Offset is the byte offset, from the start of the IVF data, of the
	// header or frame header at fault.
	Offset int64
	// Reason says what is wrong, e.g. `unsupported codec FourCC "VP90"`.
	Reason string
}

// Error says where in the file the problem is: the file header, or the
// frame index and its byte offset.
func (e *IVFFormatError) Error() string {
	if e.Frame < 0 {
		return "ivf: file header: " + e.Reason
	}
	return fmt.Sprintf("ivf: frame %d (at byte %d): %s", e.Frame, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidIVF) true.
func (e *IVFFormatError) Is(target error) bool { return target == ErrInvalidIVF }

func headerError(format string, args ...any) error {
	return &IVFFormatError{Frame: -1, Reason: fmt.Sprintf(format, args...)}
}

// IVFHeader is the parsed 32-byte IVF file header.
type IVFHeader struct {
	FourCC string // always "VP80" for a header IVFSource accepted
	Width  uint16 // frame width in pixels, as the header states it
	Height uint16 // frame height in pixels, as the header states it
	// TimebaseDenominator and TimebaseNumerator give the tick:
	// TimebaseNumerator/TimebaseDenominator seconds. Both are non-zero.
	TimebaseDenominator uint32
	// TimebaseNumerator is the tick's numerator (see TimebaseDenominator).
	TimebaseNumerator uint32
	// FrameCount is what the header claims; writers that cannot seek leave
	// it at 0 or stale, so IVFSource does not rely on it.
	FrameCount uint32
}

func parseIVFHeader(b []byte) (IVFHeader, error) {
	if sig := string(b[0:4]); sig != ivfSignature {
		return IVFHeader{}, headerError("wrong signature %s, want %q (not an IVF file)", quoteBytes([]byte(sig)), ivfSignature)
	}
	if v := binary.LittleEndian.Uint16(b[4:6]); v != 0 {
		return IVFHeader{}, headerError("unsupported version %d, want 0", v)
	}
	if n := binary.LittleEndian.Uint16(b[6:8]); n != ivfHeaderSize {
		return IVFHeader{}, headerError("wrong header size %d, want %d", n, ivfHeaderSize)
	}
	h := IVFHeader{
		FourCC:              string(b[8:12]),
		Width:               binary.LittleEndian.Uint16(b[12:14]),
		Height:              binary.LittleEndian.Uint16(b[14:16]),
		TimebaseDenominator: binary.LittleEndian.Uint32(b[16:20]),
		TimebaseNumerator:   binary.LittleEndian.Uint32(b[20:24]),
		FrameCount:          binary.LittleEndian.Uint32(b[24:28]),
	}
	if h.FourCC != ivfFourCCVP8 {
		return IVFHeader{}, headerError("unsupported codec FourCC %s, only %q (VP8) is supported", quoteBytes([]byte(h.FourCC)), ivfFourCCVP8)
	}
	if h.TimebaseDenominator == 0 || h.TimebaseNumerator == 0 {
		return IVFHeader{}, headerError("invalid timebase %d/%d: numerator and denominator must be non-zero",
			h.TimebaseNumerator, h.TimebaseDenominator)
	}
	return h, nil
}

// quoteBytes quotes b like %q but escapes every byte outside printable
// ASCII, so a binary FourCC or signature shows as the bytes it is.
func quoteBytes(b []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			sb.WriteByte(c)
		default:
			fmt.Fprintf(&sb, "\\x%02x", c)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// ticksToDuration converts a timestamp step to a duration; ok is false when
// the result overflows or exceeds ivfMaxFrameDuration.
func (h *IVFHeader) ticksToDuration(ticks uint64) (time.Duration, bool) {
	hi, lo := bits.Mul64(ticks, uint64(h.TimebaseNumerator)*uint64(time.Second))
	den := uint64(h.TimebaseDenominator)
	if hi >= den { // quotient does not fit in 64 bits (and Div64 would panic)
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, den)
	if q == 0 || q > uint64(ivfMaxFrameDuration) {
		return 0, false
	}
	return time.Duration(q), true
}

// IVFSourceOptions configures an IVFSource. The zero value (or nil) reads the
// file once, as fast as the caller asks.
type IVFSourceOptions struct {
	// Paced makes ReadFrame return each frame at its time in real time:
	// the first frame at once, each later one when the durations of the
	// frames before it have elapsed since the first. A reader that falls
	// more than a second behind restarts the schedule instead of getting
	// a burst of frames.
	Paced bool
	// Loop restarts at the first frame at the end of the file instead of
	// returning io.EOF, with time continuing (durations keep adding up).
	// The first frame must be a key frame, or the source fails to open.
	// Without an io.Seeker to rewind, the input (up to 64 MiB) is kept in
	// memory.
	Loop bool
}

// IVFSource is a Source (and KeyFrameRequester) that reads VP8 frames
// (RFC 6386, https://www.rfc-editor.org/rfc/rfc6386) from an IVF file, the
// container of libvpx's vpxenc and vpxdec
// (https://wiki.multimedia.cx/index.php/Duck_IVF).
//
// Each Frame has Data (a fresh slice the caller may keep), KeyFrame from the
// VP8 P bit and Duration from the timestamp step to the next frame in the
// file and the header's timebase; the last frame (and any frame whose step
// is zero, backwards or over an hour) repeats the previous duration, which
// starts at DefaultDuration.
//
// Concurrency: ReadFrame must be called from one goroutine at a time.
// RequestKeyFrame, KeyFrameRequests, Header and Close may be called from
// any goroutine at any time; Close makes a paced ReadFrame that is waiting
// return at once.
type IVFSource struct {
	opts   IVFSourceOptions
	header IVFHeader

	r         io.Reader
	seeker    io.Seeker // nil if r cannot rewind
	dataStart int64     // seek position of frame 0
	size      int64     // bytes of IVF data (header included), -1 if unknown
	closer    io.Closer // the file OpenIVFSource opened

	// Read state, owned by the goroutine in ReadFrame.
	off         int64 // offset of the next frame header, from the IVF start
	index       int   // index of the next frame header in the file
	next        *ivfFrame
	nextWrapped bool  // next is frame 0 again after a loop
	nextErr     error // returned once next is nil
	prevDur     time.Duration
	started     bool
	start       time.Time
	mediaTime   time.Duration // sum of the durations returned so far

	keyReq    atomic.Bool
	keyServed atomic.Int64

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error
}

type ivfFrame struct {
	data  []byte
	pts   uint64
	index int
}

// NewIVFSource reads the IVF file header and the first frame from r and
// returns a source for its frames. Errors about the file match
// ErrInvalidIVF and say what is wrong; a file with no frames is not an
// error (ReadFrame returns io.EOF) unless opts.Loop is set. If r is an
// io.Seeker, frame sizes are also checked against the bytes that remain.
// Close does not close r.
func NewIVFSource(r io.Reader, opts *IVFSourceOptions) (*IVFSource, error) {
	if r == nil {
		return nil, errors.New("ivf: NewIVFSource: nil reader")
	}
	s := &IVFSource{r: r, size: -1, prevDur: DefaultDuration, closed: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
	}
	var hdr [ivfHeaderSize]byte
	n, err := io.ReadFull(r, hdr[:])
	switch {
	case n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
		return nil, headerError("empty input, want a %d-byte header starting %q", ivfHeaderSize, ivfSignature)
	case err == io.ErrUnexpectedEOF:
		if !bytes.HasPrefix([]byte(ivfSignature), hdr[:min(n, 4)]) {
			return nil, headerError("wrong signature %s, want %q (not an IVF file)", quoteBytes(hdr[:min(n, 4)]), ivfSignature)
		}
		return nil, headerError("truncated header: %d of %d bytes", n, ivfHeaderSize)
	case err != nil:
		return nil, fmt.Errorf("ivf: reading file header: %w", err)
	}
	if s.header, err = parseIVFHeader(hdr[:]); err != nil {
		return nil, err
	}
	s.off = ivfHeaderSize

	if sk, ok := r.(io.Seeker); ok {
		// A reader that claims to seek but cannot (a pipe behind *os.File)
		// is treated as a plain reader.
		if pos, err := sk.Seek(0, io.SeekCurrent); err == nil {
			if end, err := sk.Seek(0, io.SeekEnd); err == nil {
				if _, err := sk.Seek(pos, io.SeekStart); err != nil {
					return nil, fmt.Errorf("ivf: seeking back after measuring the input: %w", err)
				}
				s.seeker, s.dataStart = sk, pos
				s.size = end - pos + ivfHeaderSize
			}
		}
	}
	if s.opts.Loop && s.seeker == nil {
		rest, err := io.ReadAll(io.LimitReader(r, ivfMaxLoopBuffer+1))
		if err != nil {
			return nil, fmt.Errorf("ivf: buffering the input for Loop: %w", err)
		}
		if len(rest) > ivfMaxLoopBuffer {
			return nil, fmt.Errorf("ivf: Loop needs an io.Seeker or an input under %d MiB", ivfMaxLoopBuffer>>20)
		}
		br := bytes.NewReader(rest)
		s.r, s.seeker, s.dataStart = br, br, 0
		s.size = int64(len(rest)) + ivfHeaderSize
	}

	s.next, s.nextErr = s.readFrame()
	if s.nextErr != nil && s.nextErr != io.EOF {
		return nil, s.nextErr
	}
	if s.opts.Loop {
		if s.next == nil {
			return nil, &IVFFormatError{Frame: 0, Offset: ivfHeaderSize,
				Reason: "missing: the file has no frames, and Loop needs at least one"}
		}
		if !IsKeyFrame(s.next.data) {
			return nil, &IVFFormatError{Frame: 0, Offset: ivfHeaderSize,
				Reason: "first frame is not a key frame, which Loop needs (the frame after the last is the first)"}
		}
	}
	return s, nil
}

// OpenIVFSource opens the IVF file at path; see NewIVFSource. Close closes
// the file.
func OpenIVFSource(path string, opts *IVFSourceOptions) (*IVFSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ivf: %w", err)
	}
	s, err := NewIVFSource(f, opts)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.closer = f
	return s, nil
}

// Header returns the parsed file header.
func (s *IVFSource) Header() IVFHeader { return s.header }

// readFrame reads the frame at s.off. It returns io.EOF (only) at a clean
// end of the input.
func (s *IVFSource) readFrame() (*ivfFrame, error) {
	idx, off := s.index, s.off
	fail := func(format string, args ...any) error {
		return &IVFFormatError{Frame: idx, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	var fh [ivfFrameHeaderSize]byte
	n, err := io.ReadFull(s.r, fh[:])
	switch {
	case err == io.EOF:
		return nil, io.EOF
	case err == io.ErrUnexpectedEOF:
		return nil, fail("truncated frame header: %d of %d bytes", n, ivfFrameHeaderSize)
	case err != nil:
		return nil, fmt.Errorf("ivf: reading frame %d header: %w", idx, err)
	}
	size := binary.LittleEndian.Uint32(fh[0:4])
	pts := binary.LittleEndian.Uint64(fh[4:12])
	switch {
	case size == 0:
		return nil, fail("empty frame (size 0)")
	case size > IVFMaxFrameSize:
		return nil, fail("frame size %d exceeds the %d-byte limit", size, IVFMaxFrameSize)
	}
	if s.size >= 0 {
		if remaining := s.size - off - ivfFrameHeaderSize; int64(size) > remaining {
			return nil, fail("frame size %d is larger than the %d bytes left in the file", size, remaining)
		}
	}
	// ReadAll grows its buffer as data arrives, so a lying size in a
	// non-seekable stream does not allocate the whole claimed size at once.
	data, err := io.ReadAll(io.LimitReader(s.r, int64(size)))
	if err != nil {
		return nil, fmt.Errorf("ivf: reading frame %d: %w", idx, err)
	}
	if len(data) < int(size) {
		return nil, fail("truncated frame: %d of %d bytes", len(data), size)
	}
	s.index++
	s.off += ivfFrameHeaderSize + int64(size)
	return &ivfFrame{data: data, pts: pts, index: idx}, nil
}

// advance loads the frame after s.next into s.next (rewinding at the end if
// Loop is set) and returns the frame that was s.next.
func (s *IVFSource) advance() *ivfFrame {
	cur := s.next
	s.nextWrapped = false
	s.next, s.nextErr = s.readFrame()
	if s.nextErr == io.EOF && s.opts.Loop {
		s.next, s.nextErr = s.rewind()
		s.nextWrapped = s.next != nil
	}
	return cur
}

func (s *IVFSource) rewind() (*ivfFrame, error) {
	if _, err := s.seeker.Seek(s.dataStart, io.SeekStart); err != nil {
		return nil, fmt.Errorf("ivf: rewinding for Loop: %w", err)
	}
	s.off, s.index = ivfHeaderSize, 0
	f, err := s.readFrame()
	switch {
	case err == io.EOF:
		return nil, &IVFFormatError{Frame: 0, Offset: ivfHeaderSize, Reason: "no frames after rewinding for Loop (file changed?)"}
	case err != nil:
		return nil, err
	case !IsKeyFrame(f.data):
		return nil, &IVFFormatError{Frame: 0, Offset: ivfHeaderSize, Reason: "first frame is not a key frame after rewinding for Loop (file changed?)"}
	}
	return f, nil
}

// errIVFSourceClosed is returned by ReadFrame after Close.
var errIVFSourceClosed = fmt.Errorf("ivf: source closed: %w", os.ErrClosed)

// ReadFrame returns the next frame. At the end of the file it returns
// io.EOF (unless Loop is set); a malformed frame gives an error matching
// ErrInvalidIVF after every good frame before it has been returned. With
// Paced it waits until the frame is due, returning ctx.Err() at once if ctx
// ends first. If a key frame was requested, frames up to the next key frame
// are skipped; the key frame comes out when the skipped-over frame would
// have, and pacing continues from there.
func (s *IVFSource) ReadFrame(ctx context.Context) (Frame, error) {
	select {
	case <-s.closed:
		return Frame{}, errIVFSourceClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	if s.next == nil {
		return Frame{}, s.nextErr
	}
	if s.opts.Paced && s.started {
		if err := s.wait(ctx); err != nil {
			return Frame{}, err
		}
	}

	if s.keyReq.Swap(false) {
		// Bounded: with Loop, frame 0 is a key frame (checked at open and
		// at every rewind), so this stops within one pass.
		for s.next != nil && !IsKeyFrame(s.next.data) {
			s.advance()
		}
		if s.next == nil {
			return Frame{}, s.nextErr
		}
		s.keyServed.Add(1)
	}

	cur := s.advance()
	dur := s.prevDur
	if s.next != nil && !s.nextWrapped && s.next.pts > cur.pts {
		if d, ok := s.header.ticksToDuration(s.next.pts - cur.pts); ok {
			dur = d
		}
	}
	s.prevDur = dur
	if !s.started {
		s.started = true
		s.start = time.Now()
	}
	s.mediaTime += dur
	return Frame{Data: cur.data, KeyFrame: IsKeyFrame(cur.data), Duration: dur}, nil
}

// wait blocks until the frame after mediaTime is due.
func (s *IVFSource) wait(ctx context.Context) error {
	due := s.start.Add(s.mediaTime)
	d := time.Until(due)
	if d <= 0 {
		if -d > ivfMaxLag {
			s.start = s.start.Add(-d) // fell behind: restart the schedule now
		}
		return nil
	}
	return pace.Until(ctx, due, s.closed, errIVFSourceClosed)
}

// RequestKeyFrame asks for the next ReadFrame to return a key frame: it
// skips forward to the next key frame in the file, wrapping around if Loop
// is set. Requests made before that ReadFrame are served by one key frame.
// It never blocks and is safe to call from any goroutine.
func (s *IVFSource) RequestKeyFrame() { s.keyReq.Store(true) }

// KeyFrameRequests returns how many key frame requests ReadFrame has served
// (several requests served by one key frame count once).
func (s *IVFSource) KeyFrameRequests() int { return int(s.keyServed.Load()) }

// Close releases the source: it closes the file if OpenIVFSource opened it
// (not the reader given to NewIVFSource) and makes ReadFrame, including a
// paced one that is waiting, return an error. Calling it again does
// nothing.
func (s *IVFSource) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		if s.closer != nil {
			s.closeErr = s.closer.Close()
		}
	})
	return s.closeErr
}

var (
	_ Source            = (*IVFSource)(nil)
	_ KeyFrameRequester = (*IVFSource)(nil)
	_ Sink              = (*IVFSink)(nil)
)

// IVFSinkOptions configures an IVFSink. The zero value (or nil) takes the
// picture size from the first key frame and writes timestamps in 1/90000 s
// ticks from the accumulated frame durations.
type IVFSinkOptions struct {
	// Width and Height override the picture size in the file header; when
	// either is 0 both come from the first key frame's VP8 header
	// (RFC 6386 §9.1).
	Width, Height uint16
	// Timescale is the ticks per second of the file's timebase
	// (1/Timescale s): 90000 (the RTP video clock, the default when 0) or
	// 1000 (milliseconds, what vpxenc writes) are usual.
	Timescale uint32
	// ArrivalTime takes each frame's timestamp from when WriteFrame is
	// called (relative to the first frame written) instead of from the sum
	// of the durations of the frames before it (a 0 Duration counting as
	// DefaultDuration).
	ArrivalTime bool
}

// IVFSink is a Sink that writes the VP8 frames it gets to an IVF file
// (https://wiki.multimedia.cx/index.php/Duck_IVF) that vpxdec and
// IVFSource can read.
//
// Frames before the first decodable key frame are dropped, since a decoder
// cannot use them, and counted in Dropped; so are empty frames. The file
// header is written with the first frame kept (or at Close if none was).
// When the writer is an io.WriteSeeker that can seek, Close patches the
// frame count into the header; otherwise the header keeps the count it was
// written with (0), which readers such as vpxdec ignore.
//
// Concurrency: all methods are safe to call from any goroutine; WriteFrame
// calls are serialised, so frames are written in the order the calls
// acquire the sink (a call writes from one goroutine, in order).
// WriteFrame does not keep Data.
type IVFSink struct {
	mu       sync.Mutex
	w        io.Writer
	seeker   io.Seeker // nil if w cannot seek
	start    int64     // seek position of the file header
	closer   io.Closer // the file CreateIVFSink created
	opts     IVFSinkOptions
	now      func() time.Time
	header   bool // file header written
	width    uint16
	height   uint16
	frames   int
	dropped  int
	written  int64         // bytes written, header included
	elapsed  time.Duration // sum of the durations of the frames written
	first    time.Time     // arrival of the first frame written
	lastPTS  uint64
	buf      []byte
	err      error // sticky write error
	isClosed bool
}

// NewIVFSink returns a sink writing an IVF file to w. If w is an
// io.WriteSeeker that can seek, Close patches the header's frame count.
// Close does not close w.
func NewIVFSink(w io.Writer, opts *IVFSinkOptions) (*IVFSink, error) {
	if w == nil {
		return nil, errors.New("ivf: NewIVFSink: nil writer")
	}
	s := &IVFSink{w: w, now: time.Now}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Timescale == 0 {
		s.opts.Timescale = 90000
	}
	if s.opts.Width != 0 && s.opts.Height != 0 {
		s.width, s.height = s.opts.Width, s.opts.Height
	}
	if sk, ok := w.(io.Seeker); ok {
		if pos, err := sk.Seek(0, io.SeekCurrent); err == nil {
			s.seeker, s.start = sk, pos
		}
	}
	return s, nil
}

// CreateIVFSink creates (or truncates) the file at path and returns a sink
// writing to it; Close patches the frame count and closes the file.
func CreateIVFSink(path string, opts *IVFSinkOptions) (*IVFSink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("ivf: %w", err)
	}
	s, err := NewIVFSink(f, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.closer = f
	return s, nil
}

// vp8KeyFrameSize returns the picture size a VP8 key frame declares
// (RFC 6386 §9.1: a 3-byte frame tag, the start code 9d 01 2a, then 14-bit
// width and height, each with a 2-bit scale above it, little endian).
func vp8KeyFrameSize(data []byte) (width, height uint16, ok bool) {
	if len(data) < 10 || !IsKeyFrame(data) || data[3] != 0x9d || data[4] != 0x01 || data[5] != 0x2a {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint16(data[6:8]) & 0x3fff, binary.LittleEndian.Uint16(data[8:10]) & 0x3fff, true
}

var errIVFSinkClosed = fmt.Errorf("ivf: sink closed: %w", os.ErrClosed)

// WriteFrame appends f to the file, or drops it if no key frame has been
// written yet and f is not a decodable key frame (see Dropped). It returns
// an error after Close, for a frame over IVFMaxFrameSize, and when writing
// fails (after which every call returns that error).
func (s *IVFSink) WriteFrame(f Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.isClosed:
		return errIVFSinkClosed
	case s.err != nil:
		return s.err
	case len(f.Data) > IVFMaxFrameSize:
		return fmt.Errorf("ivf: frame of %d bytes exceeds the %d-byte limit", len(f.Data), IVFMaxFrameSize)
	case len(f.Data) == 0:
		s.dropped++
		return nil
	}
	now := s.now()
	if s.frames == 0 {
		w, h, ok := vp8KeyFrameSize(f.Data)
		if !ok {
			s.dropped++
			return nil
		}
		if s.width == 0 || s.height == 0 {
			s.width, s.height = w, h
		}
		s.first = now
	}

	var pts uint64
	if s.opts.ArrivalTime {
		pts = durationToTicks(now.Sub(s.first), s.opts.Timescale)
	} else {
		pts = durationToTicks(s.elapsed, s.opts.Timescale)
	}
	if s.frames > 0 && pts <= s.lastPTS {
		pts = s.lastPTS + 1 // keep timestamps strictly increasing
	}

	if !s.header {
		if err := s.writeHeader(); err != nil {
			return err
		}
	}
	s.buf = binary.LittleEndian.AppendUint32(s.buf[:0], uint32(len(f.Data)))
	s.buf = binary.LittleEndian.AppendUint64(s.buf, pts)
	s.buf = append(s.buf, f.Data...)
	if err := s.write(s.buf); err != nil {
		return err
	}
	s.frames++
	s.lastPTS = pts
	d := f.Duration
	if d <= 0 {
		d = DefaultDuration
	}
	s.elapsed += d
	return nil
}

func durationToTicks(d time.Duration, timescale uint32) uint64 {
	if d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(d), uint64(timescale))
	if hi >= uint64(time.Second) {
		return ^uint64(0)
	}
	q, r := bits.Div64(hi, lo, uint64(time.Second))
	if r >= uint64(time.Second)/2 && q < ^uint64(0) {
		q++ // round to nearest
	}
	return q
}

func (s *IVFSink) write(b []byte) error {
	n, err := s.w.Write(b)
	s.written += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.err = fmt.Errorf("ivf: writing: %w", err)
		return s.err
	}
	return nil
}

func (s *IVFSink) writeHeader() error {
	var h [ivfHeaderSize]byte
	copy(h[0:4], ivfSignature)
	binary.LittleEndian.PutUint16(h[4:6], 0)
	binary.LittleEndian.PutUint16(h[6:8], ivfHeaderSize)
	copy(h[8:12], ivfFourCCVP8)
	binary.LittleEndian.PutUint16(h[12:14], s.width)
	binary.LittleEndian.PutUint16(h[14:16], s.height)
	binary.LittleEndian.PutUint32(h[16:20], s.opts.Timescale)
	binary.LittleEndian.PutUint32(h[20:24], 1)
	binary.LittleEndian.PutUint32(h[24:28], 0)
	s.header = true
	return s.write(h[:])
}

// Frames returns how many frames have been written.
func (s *IVFSink) Frames() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames
}

// Dropped returns how many frames were dropped: delta frames (and key
// frames without a valid VP8 start code) before the first key frame, and
// empty frames.
func (s *IVFSink) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close writes the header if no frame was written, patches the frame count
// when the writer can seek, and closes the file if CreateIVFSink created
// it. Calling it again does nothing and returns nil.
func (s *IVFSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosed {
		return nil
	}
	s.isClosed = true
	err := s.err
	if err == nil && !s.header {
		err = s.writeHeader()
	}
	if err == nil && s.seeker != nil && s.frames > 0 {
		err = s.patchFrameCount()
	}
	if s.closer != nil {
		if cerr := s.closer.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("ivf: closing: %w", cerr)
		}
	}
	return err
}

func (s *IVFSink) patchFrameCount() error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(min(s.frames, int(^uint32(0)))))
	if _, err := s.seeker.Seek(s.start+24, io.SeekStart); err != nil {
		return fmt.Errorf("ivf: seeking to patch the frame count: %w", err)
	}
	if _, err := s.w.Write(b[:]); err != nil {
		return fmt.Errorf("ivf: patching the frame count: %w", err)
	}
	if _, err := s.seeker.Seek(s.start+s.written, io.SeekStart); err != nil {
		return fmt.Errorf("ivf: seeking back to the end: %w", err)
	}
	return nil
}
