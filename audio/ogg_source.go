package audio

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/smpcall/smpcall/internal/pace"
)

// OggSourceOptions configures an OggSource. The zero value (or nil) reads
// the file once, as fast as the caller takes frames.
type OggSourceOptions struct {
	// Paced makes ReadFrame wait until each frame is due in real time:
	// frame n is due when the durations of frames 0..n-1 have elapsed since
	// the first frame was returned. A caller that falls behind gets the
	// late frames at once, without waiting, until it has caught up.
	Paced bool
	// Loop restarts from the first audio packet at the end of the input
	// instead of returning io.EOF; paced time keeps running across the
	// restart. If the reader given to NewOggSource is an io.Seeker the
	// source seeks back to where it started; otherwise it keeps a copy of
	// the packets of the first pass in memory (at most 64 MiB; past that,
	// reaching the end is an error).
	Loop bool
}

// oggLoopCacheLimit bounds the packets kept for looping a non-seekable input.
const oggLoopCacheLimit = 64 << 20

// OggSource is a Source that reads the Opus packets of an Ogg Opus file
// (RFC 7845, https://www.rfc-editor.org/rfc/rfc7845, in an Ogg container,
// RFC 3533, https://www.rfc-editor.org/rfc/rfc3533), one packet per frame,
// each with the duration its TOC byte gives (RFC 6716 §3.1,
// https://www.rfc-editor.org/rfc/rfc6716#section-3.1). Packets are
// reassembled from the page segment tables, so pages may hold several
// packets and packets may span pages. Chained files (one Opus stream after
// another) play through; pages of other logical streams multiplexed into the
// file are skipped. Pre-skip and granule positions do not change what is
// sent: every packet is returned whole.
//
// Concurrency: ReadFrame and Head must be called from one goroutine at a
// time (a call reads a Source from one goroutine). Close may be called from
// any goroutine, also while ReadFrame is waiting; it wakes a paced wait,
// which then returns ErrOggClosed. A read blocked in the underlying reader
// is not interrupted by ctx; for files, Close interrupts it. Each returned
// Frame.Data is a fresh slice the caller owns.
//
// Errors: a malformed input gives an error wrapping ErrNotOgg,
// ErrOggTruncated, ErrOggCRC, ErrOggCorrupt, ErrOggNotOpus, ErrOggBadHeader
// or ErrOggBadPacket, never a panic. Such errors are final: later calls
// return the same error. Cancellation of ctx is not final.
type OggSource struct {
	opts   OggSourceOptions
	d      oggDemuxer
	file   *os.File // set by OpenOggSource; closed by Close
	seeker io.Seeker
	origin int64 // offset of the stream start in seeker

	done      chan struct{}
	closeOnce sync.Once

	err        error // final error (io.EOF included)
	pending    Frame
	hasPending bool
	pace       oggPacer
	passCount  int // audio packets read in the current pass

	// Loop over a non-seekable input.
	cache      []Frame
	cacheBytes int
	cacheFull  bool
	replaying  bool
	replayNext int
}

// NewOggSource reads the header packets (OpusHead, OpusTags) of the Ogg Opus
// stream in r and returns a source of its audio packets. It does not close
// r. opts may be nil.
func NewOggSource(r io.Reader, opts *OggSourceOptions) (*OggSource, error) {
	s := &OggSource{done: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
	}
	if sk, ok := r.(io.Seeker); ok && s.opts.Loop {
		if off, err := sk.Seek(0, io.SeekCurrent); err == nil {
			s.seeker, s.origin = sk, off
		}
	}
	s.d.reset(r)
	if err := s.d.startLink(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenOggSource opens the Ogg Opus file at path; see NewOggSource. Close
// closes the file.
func OpenOggSource(path string, opts *OggSourceOptions) (*OggSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	s, err := NewOggSource(f, opts)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.file = f
	return s, nil
}

// Head returns the header of the Ogg Opus stream being read (of the current
// link, for a chained file).
func (s *OggSource) Head() OggHeader { return s.d.head }

// Close stops the source: a waiting or later ReadFrame returns ErrOggClosed.
// It closes the file if the source was made by OpenOggSource, not the reader
// given to NewOggSource. It is safe to call more than once and from any
// goroutine.
func (s *OggSource) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		if s.file != nil {
			err = s.file.Close()
		}
	})
	return err
}

// ReadFrame returns the next Opus packet and its duration, io.EOF at the end
// of the input (unless Loop), ctx.Err() if ctx ends first, or an error for a
// malformed input.
func (s *OggSource) ReadFrame(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	select {
	case <-s.done:
		return Frame{}, ErrOggClosed
	default:
	}
	if !s.hasPending {
		f, err := s.next()
		if err != nil {
			select {
			case <-s.done: // the read failed because Close closed the file
				return Frame{}, ErrOggClosed
			default:
			}
			return Frame{}, err
		}
		s.pending, s.hasPending = f, true
	}
	if s.opts.Paced {
		if err := s.pace.wait(ctx, s.done); err != nil {
			return Frame{}, err
		}
	}
	f := s.pending
	s.pending, s.hasPending = Frame{}, false
	s.pace.advance(f.Duration)
	return f, nil
}

// next returns the next audio frame, looping if asked to.
func (s *OggSource) next() (Frame, error) {
	for s.err == nil {
		if s.replaying {
			if s.replayNext == len(s.cache) {
				s.replayNext = 0
			}
			f := s.cache[s.replayNext]
			s.replayNext++
			return Frame{Data: append([]byte(nil), f.Data...), Duration: f.Duration}, nil
		}
		pkt, err := s.d.audioPacket()
		if errors.Is(err, io.EOF) && s.opts.Loop && s.passCount > 0 {
			if err := s.rewind(); err != nil {
				s.err = err
			}
			continue
		}
		if err != nil {
			s.err = err
			break
		}
		n, err := oggPacketSamples(pkt)
		if err != nil {
			s.err = fmt.Errorf("%w (audio packet %d, page at offset %d)", err, s.d.packets, s.d.pageOffset)
			break
		}
		s.d.packets++
		s.passCount++
		f := Frame{Data: pkt, Duration: oggSamplesDuration(n)}
		if s.opts.Loop && s.seeker == nil && !s.cacheFull {
			s.cacheBytes += len(pkt)
			if s.cacheBytes > oggLoopCacheLimit {
				s.cache, s.cacheFull = nil, true
			} else {
				s.cache = append(s.cache, Frame{Data: append([]byte(nil), pkt...), Duration: f.Duration})
			}
		}
		return f, nil
	}
	return Frame{}, s.err
}

// rewind restarts the input for Loop.
func (s *OggSource) rewind() error {
	s.passCount = 0
	if s.seeker == nil {
		if s.cacheFull {
			return fmt.Errorf("audio: cannot loop: the input is not seekable and has more than %d bytes of packets", oggLoopCacheLimit)
		}
		s.replaying, s.replayNext = true, 0
		return nil
	}
	if _, err := s.seeker.Seek(s.origin, io.SeekStart); err != nil {
		return fmt.Errorf("audio: cannot loop: %w", err)
	}
	s.d.reset(s.d.src)
	return s.d.startLink(nil)
}

// oggPacer spaces frames in real time. The zero value is ready; the first
// wait returns at once and starts the clock.
type oggPacer struct {
	start   time.Time
	started bool
	next    time.Duration // offset from start at which the next frame is due
}

// wait blocks until the next frame is due, ctx ends (ctx.Err()) or done is
// closed (ErrOggClosed).
func (p *oggPacer) wait(ctx context.Context, done <-chan struct{}) error {
	if !p.started {
		p.start, p.started = time.Now(), true
		return nil
	}
	return pace.Until(ctx, p.start.Add(p.next), done, ErrOggClosed)
}

// advance moves the due time of the next frame by the duration of the frame
// just returned (0 means DefaultDuration).
func (p *oggPacer) advance(d time.Duration) {
	if d <= 0 {
		d = DefaultDuration
	}
	p.next += d
}

// oggPage is one parsed Ogg page (RFC 3533 §6). lacing and body alias the
// demuxer's buffers until the next page is read.
type oggPage struct {
	flags  byte
	serial uint32
	seq    uint32
	lacing []byte
	body   []byte
}

// oggDemuxer reads pages and reassembles the packets of the selected
// (Opus) logical stream.
type oggDemuxer struct {
	src        io.Reader
	r          *bufio.Reader
	off        int64 // bytes consumed
	pageOffset int64 // offset of the last page read
	pages      int   // pages read
	packets    int   // audio packets returned, for error messages

	hdr    [oggHeaderLen]byte
	lacing [oggMaxSegments]byte
	body   []byte

	head    OggHeader
	serial  uint32
	nextSeq uint32
	partial []byte // packet continued on the next page
	open    bool   // partial is in progress
	queue   [][]byte
	eos     bool // the selected stream's last page was read
}

func (d *oggDemuxer) reset(r io.Reader) {
	d.src = r
	if d.r == nil {
		d.r = bufio.NewReaderSize(r, 16<<10)
	} else {
		d.r.Reset(r)
	}
	d.off, d.pageOffset, d.pages, d.packets = 0, 0, 0, 0
	d.partial, d.open, d.queue, d.eos = d.partial[:0], false, nil, false
}

// readPage reads and checks the next page. It returns io.EOF only at a page
// boundary after at least one page.
func (d *oggDemuxer) readPage() (*oggPage, error) {
	d.pageOffset = d.off
	at := d.off
	n, err := io.ReadFull(d.r, d.hdr[:])
	d.off += int64(n)
	if m := min(n, len(oggCapture)); string(d.hdr[:m]) != oggCapture[:m] {
		if d.pages == 0 {
			return nil, fmt.Errorf("%w: input does not start with %q", ErrNotOgg, oggCapture)
		}
		return nil, fmt.Errorf("%w: no %q capture pattern at offset %d", ErrOggCorrupt, oggCapture, at)
	}
	switch {
	case err == io.EOF && d.pages == 0:
		return nil, fmt.Errorf("%w: empty input", ErrNotOgg)
	case err == io.EOF:
		return nil, io.EOF
	case err == io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("%w: page at offset %d: header has %d of %d bytes", ErrOggTruncated, at, n, oggHeaderLen)
	case err != nil:
		return nil, fmt.Errorf("audio: reading Ogg page at offset %d: %w", at, err)
	}
	if v := d.hdr[4]; v != 0 {
		return nil, fmt.Errorf("%w: page at offset %d: unsupported Ogg version %d", ErrOggCorrupt, at, v)
	}
	nseg := int(d.hdr[26])
	n, err = io.ReadFull(d.r, d.lacing[:nseg])
	d.off += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: page at offset %d: segment table of %d entries, only %d bytes remain", ErrOggTruncated, at, nseg, n)
		}
		return nil, fmt.Errorf("audio: reading Ogg page at offset %d: %w", at, err)
	}
	size := 0
	for _, l := range d.lacing[:nseg] {
		size += int(l)
	}
	if cap(d.body) < size {
		d.body = make([]byte, size, max(size, 4096))
	}
	d.body = d.body[:size]
	n, err = io.ReadFull(d.r, d.body)
	d.off += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: page at offset %d: segment table sums to %d body bytes, only %d remain", ErrOggTruncated, at, size, n)
		}
		return nil, fmt.Errorf("audio: reading Ogg page at offset %d: %w", at, err)
	}
	want := binary.LittleEndian.Uint32(d.hdr[22:])
	var zero [4]byte
	crc := oggCRC(0, d.hdr[:22])
	crc = oggCRC(crc, zero[:])
	crc = oggCRC(crc, d.hdr[26:])
	crc = oggCRC(crc, d.lacing[:nseg])
	crc = oggCRC(crc, d.body)
	if crc != want {
		return nil, fmt.Errorf("%w: page at offset %d: stored %08x, computed %08x", ErrOggCRC, at, want, crc)
	}
	d.pages++
	return &oggPage{
		flags:  d.hdr[5],
		serial: binary.LittleEndian.Uint32(d.hdr[14:]),
		seq:    binary.LittleEndian.Uint32(d.hdr[18:]),
		lacing: d.lacing[:nseg],
		body:   d.body,
	}, nil
}

// startLink finds the OpusHead page of the next Opus logical stream,
// starting with page p if it is not nil, and reads its OpusTags packet.
func (d *oggDemuxer) startLink(p *oggPage) error {
	for {
		if p == nil {
			var err error
			if p, err = d.readPage(); errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: the input ends before an OpusHead page", ErrOggNotOpus)
			} else if err != nil {
				return err
			}
		}
		if p.flags&oggFlagBOS == 0 {
			// RFC 3533 §4: all beginning-of-stream pages come first.
			return fmt.Errorf("%w: no beginning-of-stream page with an OpusHead packet (page at offset %d)", ErrOggNotOpus, d.pageOffset)
		}
		if len(p.body) >= 8 && string(p.body[:8]) == oggOpusHeadMagic {
			break
		}
		p = nil // another codec's stream: skip it
	}
	// RFC 7845 §3: the OpusHead packet alone fills the first page.
	nseg := len(p.lacing)
	if p.flags&oggFlagContinued != 0 || nseg == 0 || p.lacing[nseg-1] == 255 {
		return fmt.Errorf("%w: the OpusHead packet does not end on its page", ErrOggBadHeader)
	}
	for _, l := range p.lacing[:nseg-1] {
		if l != 255 {
			return fmt.Errorf("%w: the OpusHead page holds more than one packet", ErrOggBadHeader)
		}
	}
	var h OggHeader
	if err := oggParseHead(p.body, &h); err != nil {
		return err
	}
	d.serial, d.nextSeq = p.serial, p.seq+1
	d.partial, d.open, d.queue, d.eos = d.partial[:0], false, nil, p.flags&oggFlagEOS != 0
	tags, err := d.packet(oggMaxTagsPacket)
	if errors.Is(err, io.EOF) || errors.Is(err, errOggEndOfLink) {
		return fmt.Errorf("%w: the stream ends before its OpusTags packet", ErrOggBadHeader)
	} else if err != nil {
		return err
	}
	if err := oggParseTags(tags, &h); err != nil {
		return err
	}
	d.head = h
	return nil
}

// errOggEndOfLink: the selected stream's end-of-stream page was read.
var errOggEndOfLink = errors.New("end of Ogg logical stream")

// audioPacket returns the next audio packet, going on to the next link of a
// chained file. It returns io.EOF at the end of the input.
func (d *oggDemuxer) audioPacket() ([]byte, error) {
	for {
		pkt, err := d.packet(oggMaxAudioPacket)
		if !errors.Is(err, errOggEndOfLink) {
			return pkt, err
		}
		// Look for the beginning of a chained stream; skip the rest of
		// other multiplexed streams.
		for {
			p, err := d.readPage()
			if err != nil {
				return nil, err
			}
			if p.flags&oggFlagBOS != 0 {
				if err := d.startLink(p); err != nil {
					return nil, err
				}
				break
			}
			if p.serial == d.serial {
				return nil, fmt.Errorf("%w: page at offset %d after the end of its stream", ErrOggCorrupt, d.pageOffset)
			}
		}
	}
}

// packet returns the next complete packet of the selected stream,
// errOggEndOfLink after its last one, or io.EOF where the input ends.
func (d *oggDemuxer) packet(limit int) ([]byte, error) {
	for len(d.queue) == 0 {
		if d.eos {
			return nil, errOggEndOfLink
		}
		p, err := d.readPage()
		if errors.Is(err, io.EOF) {
			if d.open {
				return nil, fmt.Errorf("%w: the input ends inside a packet", ErrOggTruncated)
			}
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		if p.serial != d.serial {
			continue // another multiplexed stream
		}
		if p.flags&oggFlagBOS != 0 {
			return nil, fmt.Errorf("%w: page at offset %d: second beginning-of-stream page for one stream", ErrOggCorrupt, d.pageOffset)
		}
		if p.seq != d.nextSeq {
			return nil, fmt.Errorf("%w: page at offset %d: sequence number %d, want %d (pages lost)", ErrOggCorrupt, d.pageOffset, p.seq, d.nextSeq)
		}
		d.nextSeq++
		cont := p.flags&oggFlagContinued != 0
		if cont && !d.open {
			return nil, fmt.Errorf("%w: page at offset %d continues a packet but none is open", ErrOggCorrupt, d.pageOffset)
		}
		if !cont && d.open {
			return nil, fmt.Errorf("%w: page at offset %d does not continue the open packet", ErrOggCorrupt, d.pageOffset)
		}
		// Segments of 255 bytes continue a packet; a shorter one ends it.
		off := 0
		for _, l := range p.lacing {
			d.partial = append(d.partial, p.body[off:off+int(l)]...)
			off += int(l)
			d.open = true
			if len(d.partial) > limit {
				return nil, fmt.Errorf("%w: packet larger than %d bytes", ErrOggCorrupt, limit)
			}
			if l < 255 {
				d.queue = append(d.queue, append([]byte(nil), d.partial...))
				d.partial, d.open = d.partial[:0], false
			}
		}
		if p.flags&oggFlagEOS != 0 {
			d.eos = true
			if d.open {
				return nil, fmt.Errorf("%w: the stream ends inside a packet", ErrOggTruncated)
			}
		}
	}
	pkt := d.queue[0]
	d.queue[0] = nil
	d.queue = d.queue[1:]
	return pkt, nil
}
