package lzstring

import "math/bits"

// Codes with a fixed meaning; phrases are numbered from firstPhrase on.
const (
	codeChar8   = 0 // the next 8 bits are a character not seen before
	codeChar16  = 1 // the next 16 bits are a character not seen before
	codeEnd     = 2 // end of stream
	firstPhrase = 3
)

// bitWriter packs codes into base64 characters the way lz-string does:
// values go out least significant bit first, and each output character is
// filled from its most significant bit down.
type bitWriter struct {
	out   []byte // base64 characters written so far
	acc   byte   // bits of the character being filled
	nbits int    // how many bits acc holds (0..5)
}

func (w *bitWriter) write(value, width int) {
	for range width {
		w.acc = w.acc<<1 | byte(value&1)
		value >>= 1
		w.nbits++
		if w.nbits == 6 {
			w.out = append(w.out, alphabet[w.acc])
			w.acc, w.nbits = 0, 0
		}
	}
}

// finish flushes the last character and pads. lz-string's flush loop always
// emits one more character, even when the stream already ended on a
// character boundary (that character is then "A", six zero bits); we do the
// same to stay byte-compatible.
func (w *bitWriter) finish() string {
	w.out = append(w.out, alphabet[w.acc<<(6-w.nbits)])
	for len(w.out)%4 != 0 {
		w.out = append(w.out, '=')
	}
	return string(w.out)
}

// compressor holds the state of one compression.
type compressor struct {
	w bitWriter
	// decoderSize is the size of the decoder's dictionary (reserved codes
	// included) once it has read everything written so far. The decoder
	// may next receive any code up to and including decoderSize (the one
	// it is about to create), so codes are written bits.Len(decoderSize)
	// wide. The compressor's own dictionary runs ahead of the decoder's
	// because it assigns codes to characters as soon as it sees them.
	decoderSize int
	sentAny     bool // whether any phrase has been written yet
	// unsent[code-firstPhrase] is true while code stands for a single
	// unit that has not yet been sent to the decoder as a literal.
	unsent []bool
}

// emit writes the phrase with dictionary code code; unit is the phrase's
// only unit when code is a single unit.
func (c *compressor) emit(code int, unit uint16) {
	width := bits.Len(uint(c.decoderSize))
	if c.unsent[code-firstPhrase] {
		// First use of this unit: send it literally. The decoder adds
		// it to its dictionary, under the code we gave it earlier.
		c.unsent[code-firstPhrase] = false
		if unit < 256 {
			c.w.write(codeChar8, width)
			c.w.write(int(unit), 8)
		} else {
			c.w.write(codeChar16, width)
			c.w.write(int(unit), 16)
		}
		c.decoderSize++
	} else {
		c.w.write(code, width)
	}
	// After every phrase but the first, the decoder adds "previous phrase
	// + first unit of this phrase", which it can only do once it has seen
	// this phrase.
	if c.sentAny {
		c.decoderSize++
	}
	c.sentAny = true
}

// compress is lz-string's _compress(units, 6, base64) followed by the
// padding of compressToBase64.
func compress(units []uint16) string {
	// Size guesses for SDP-like text, which compresses to about 0.9
	// base64 characters per unit and defines a phrase every 3 or so units.
	c := compressor{decoderSize: firstPhrase, unsent: make([]bool, 0, len(units)/2+8)}
	c.w.out = make([]byte, 0, len(units)+8)
	chars := make(map[uint16]int, 128) // unit -> code of the one-unit phrase
	// phrases maps (code of phrase p, unit u) to the code of phrase p+u:
	// a trie stored in a map, so phrases are never built as strings.
	phrases := make(map[uint64]int, len(units)/2)

	// The current phrase: its code w, and its first unit (its only unit
	// while it is one unit long, which is when emit needs it).
	w, wUnit := -1, uint16(0)
	for _, u := range units {
		code, ok := chars[u]
		if !ok {
			code = firstPhrase + len(c.unsent)
			chars[u] = code
			c.unsent = append(c.unsent, true)
		}
		if w < 0 { // first unit of the input
			w, wUnit = code, u
			continue
		}
		key := uint64(w)<<16 | uint64(u)
		if longer, ok := phrases[key]; ok { // w+u is known: keep extending
			w = longer
			continue
		}
		c.emit(w, wUnit)
		if !spellsProto(phrases, chars, w, u) {
			phrases[key] = firstPhrase + len(c.unsent)
		}
		c.unsent = append(c.unsent, false) // the code is used up either way
		w, wUnit = code, u
	}
	if w >= 0 {
		c.emit(w, wUnit)
	}
	c.w.write(codeEnd, bits.Len(uint(c.decoderSize)))
	return c.w.finish()
}

// spellsProto reports whether phrase w followed by u spells "__proto__".
// lz-string 1.5.0 keeps its phrases as keys of a plain JavaScript object,
// where assigning to the key "__proto__" does not create an entry (it is the
// prototype setter, which ignores numbers). So lz-string uses up a code for
// that phrase but never finds it again, and keeps sending it in two parts. We
// do the same, or our output would differ once a text repeats "__proto__".
func spellsProto(phrases map[uint64]int, chars map[uint16]int, w int, u uint16) bool {
	const proto = "__proto__"
	if u != '_' {
		return false
	}
	// Find the code of "__proto_", if that phrase exists.
	code, ok := chars['_']
	for i := 1; ok && i < len(proto)-1; i++ {
		code, ok = phrases[uint64(code)<<16|uint64(proto[i])]
	}
	return ok && code == w
}
