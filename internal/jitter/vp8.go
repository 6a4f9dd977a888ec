package jitter

// vp8Desc is what the receive buffer needs from a VP8 payload descriptor
// (RFC 7741 §4.2):
//
//	      0 1 2 3 4 5 6 7
//	     +-+-+-+-+-+-+-+-+
//	     |X|R|N|S|R| PID | (REQUIRED)
//	     +-+-+-+-+-+-+-+-+
//	X:   |I|L|T|K| RSV   | (OPTIONAL)
//	     +-+-+-+-+-+-+-+-+
//	I:   |M| PictureID   | (OPTIONAL, 7 or 15 bits)
//	     +-+-+-+-+-+-+-+-+
//	L:   |   TL0PICIDX   | (OPTIONAL)
//	     +-+-+-+-+-+-+-+-+
//	T/K: |TID|Y| KEYIDX  | (OPTIONAL)
//	     +-+-+-+-+-+-+-+-+
type vp8Desc struct {
	size int // descriptor length: the VP8 data starts at payload[size]
	// start is S=1 with PID=0: the first packet of a frame (RFC 7741 §4.2:
	// "The S bit MUST be set to 1 for the first packet of each encoded
	// frame"; later partitions also set S but have PID > 0).
	start bool
	// picBits is 0 (no PictureID), 7 or 15 (M bit).
	picBits uint8
	pic     uint16
}

// parseVP8 reads a VP8 payload descriptor without allocating. It fails when
// the descriptor runs past the payload or no VP8 data follows it: RFC 7741
// §4.1 puts at least one octet of the VP8 frame in every packet, and an
// empty one cannot be part of a frame.
func parseVP8(b []byte) (vp8Desc, bool) {
	var d vp8Desc
	if len(b) == 0 {
		return d, false
	}
	b0 := b[0]
	d.start = b0&0x10 != 0 && b0&0x07 == 0
	i := 1
	if b0&0x80 != 0 { // X: extension octet
		if i >= len(b) {
			return d, false
		}
		x := b[i]
		i++
		if x&0x80 != 0 { // I: PictureID
			if i >= len(b) {
				return d, false
			}
			if b[i]&0x80 != 0 { // M: 15-bit PictureID
				if i+1 >= len(b) {
					return d, false
				}
				d.pic = uint16(b[i]&0x7f)<<8 | uint16(b[i+1])
				d.picBits = 15
				i += 2
			} else {
				d.pic = uint16(b[i])
				d.picBits = 7
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX octet
			i++
		}
	}
	if i >= len(b) {
		return d, false
	}
	d.size = i
	return d, true
}
