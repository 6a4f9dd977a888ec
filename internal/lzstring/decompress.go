package lzstring

import (
	"fmt"
	"math/bits"
)

// bitReader reads codes back out of checked base64 text, in the bit order
// bitWriter uses. Reading past the last character fails instead of yielding
// zero bits as in lz-string, so a truncated stream cannot end "cleanly".
type bitReader struct {
	data string // base64 characters, padding removed, all in the alphabet
	pos  int    // index of the next bit; bit 0 is the top bit of data[0]
}

func (r *bitReader) read(width int) (int, bool) {
	if r.pos+width > 6*len(r.data) {
		return 0, false
	}
	v := 0
	for i := range width {
		c := sixBits[r.data[r.pos/6]]
		v |= int(c>>(5-r.pos%6)&1) << i
		r.pos++
	}
	return v, true
}

// span is a phrase stored as a range of the output: every phrase the decoder
// learns is a copy of something it has already written, so keeping offsets
// instead of strings keeps memory linear in the output even when the phrases
// grow longer and longer.
type span struct{ start, n int }

// decompress is lz-string's _decompress for base64 input, with errors where
// lz-string returns "", null or throws.
func decompress(data string) ([]uint16, error) {
	r := bitReader{data: data}
	// Initial sizes fit typical call payloads (text compresses to about
	// 0.9 characters per unit, with about one phrase per character) and
	// are capped so that a huge input cannot make us allocate up front.
	out := make([]uint16, 0, min(2*len(data), 1<<16))
	dict := make([]span, 0, min(len(data), 1<<12)) // phrase with code firstPhrase+i is dict[i]

	// room checks that n more units fit under MaxDecompressedUnits; it is
	// called before every append, so the limit holds while decoding.
	room := func(n int) error {
		if len(out)+n > MaxDecompressedUnits {
			return ErrTooLarge
		}
		return nil
	}

	var w span // the previous phrase, as written to out
	for {
		size := firstPhrase + len(dict)
		// The largest code that can come next is size: the phrase we
		// will add after this one. See compressor.decoderSize.
		codePos := r.pos
		code, ok := r.read(bits.Len(uint(size)))
		if !ok {
			return nil, fmt.Errorf("%w: input ends at bit %d before the end marker", ErrCorrupt, r.pos)
		}
		var entry span // this phrase, as written to out
		switch {
		case code == codeEnd:
			if len(out) == 0 {
				return nil, ErrEmptyResult
			}
			return out, nil
		case code == codeChar8 || code == codeChar16:
			width := 8
			if code == codeChar16 {
				width = 16
			}
			unit, ok := r.read(width)
			if !ok {
				return nil, fmt.Errorf("%w: input ends at bit %d inside a literal character", ErrCorrupt, r.pos)
			}
			if err := room(1); err != nil {
				return nil, err
			}
			entry = span{len(out), 1}
			out = append(out, uint16(unit))
			dict = append(dict, entry)
		case code < size:
			e := dict[code-firstPhrase]
			if err := room(e.n); err != nil {
				return nil, err
			}
			entry = span{len(out), e.n}
			out = append(out, out[e.start:e.start+e.n]...)
		case code == size && w.n > 0:
			// The classic LZW special case: the phrase being defined
			// right now, which must be w followed by w's first unit.
			if err := room(w.n + 1); err != nil {
				return nil, err
			}
			entry = span{len(out), w.n + 1}
			out = append(out, out[w.start:w.start+w.n]...)
			out = append(out, out[w.start])
		default:
			// Where lz-string returns null, or (for a first code of
			// 3) goes on with an undefined phrase and later throws.
			return nil, fmt.Errorf("%w: code %d at bit %d names no phrase (next code would be %d)", ErrCorrupt, code, codePos, size)
		}
		if w.n > 0 {
			// w followed by the first unit of entry; entry was
			// written right after w, so that is contiguous in out.
			dict = append(dict, span{w.start, w.n + 1})
		}
		w = entry
	}
}
