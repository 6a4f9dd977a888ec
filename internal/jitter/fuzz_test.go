package jitter

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// The fuzz targets read their input as a script of packets, so that the
// fuzzer explores orders, gaps, duplicates, timestamps, times and payloads
// (including malformed VP8 payload descriptors):
//
//	byte 0      config: bit 0 small bounds, bit 1 SetRTT(byte 1 ms),
//	            bit 2 MaxFrameSize 100 (video)
//	then per packet:
//	  h         bit 0 marker, bit 1 other SSRC, bit 2 next timestamp,
//	            bit 3 Pop at NextDeadline before the packet
//	  d         sequence number delta (int8)
//	  dt        milliseconds since the previous packet
//	  n         payload length, then n payload bytes (fewer at the end)
//
// The seed corpus is in testdata/fuzz: the scripts of videoSeeds and the
// inline seeds below, plus the smallest inputs the fuzzer found. Run with
//
//	go test -run '^$' -fuzz FuzzVideoPush -fuzztime 60s -fuzzminimizetime 5s ./internal/jitter
//	go test -run '^$' -fuzz FuzzAudioPush -fuzztime 60s -fuzzminimizetime 5s ./internal/jitter
//	go test -run '^$' -fuzz FuzzParseVP8 -fuzztime 60s ./internal/jitter
//
// (-fuzzminimizetime: with the default of 60 s the worker spends a short
// run minimising the first new inputs it finds instead of fuzzing.)

type scriptPacket struct {
	pkt        rtp.Packet
	at         time.Time
	popExpired bool
}

func parseScript(data []byte) (cfg byte, rtt time.Duration, pkts []scriptPacket) {
	if len(data) == 0 {
		return 0, 0, nil
	}
	cfg, data = data[0], data[1:]
	if cfg&2 != 0 && len(data) > 0 {
		rtt, data = time.Duration(data[0])*time.Millisecond, data[1:]
	}
	seq, ts, now := uint16(65500), uint32(0xfffff000), t0
	for len(data) >= 4 {
		h, d, dt, n := data[0], int8(data[1]), data[2], int(data[3])
		data = data[4:]
		n = min(n, len(data))
		seq += uint16(d)
		if h&4 != 0 {
			ts += 3000
		}
		now = now.Add(time.Duration(dt) * time.Millisecond)
		ssrc := uint32(1)
		if h&2 != 0 {
			ssrc = 2
		}
		pkts = append(pkts, scriptPacket{
			pkt:        rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts, Marker: h&1 != 0}, Payload: data[:n:n]},
			at:         now,
			popExpired: h&8 != 0,
		})
		data = data[n:]
	}
	return cfg, rtt, pkts
}

// script encodes packets pushed dt ms apart into the format above.
func script(cfg byte, pkts []*rtp.Packet, dt []byte) []byte {
	out := []byte{cfg}
	if cfg&2 != 0 {
		out = append(out, 60)
	}
	var seq uint16 = 65500
	ts := uint32(0xfffff000)
	for i, p := range pkts {
		h := byte(0)
		if p.Marker {
			h |= 1
		}
		if p.Timestamp != ts {
			h |= 4
			ts += 3000
		}
		if i%5 == 4 {
			h |= 8
		}
		out = append(out, h, byte(int8(p.SequenceNumber-seq)), dt[i%len(dt)], byte(min(len(p.Payload), 255)))
		out = append(out, p.Payload[:min(len(p.Payload), 255)]...)
		seq = p.SequenceNumber
	}
	return out
}

// videoSeeds are scripts from real packetized streams: in order, reordered,
// with a loss, with padding, and with a malformed descriptor.
func videoSeeds() [][]byte {
	rng := rand.New(rand.NewPCG(99, 99))
	s := newSender(65500, 0xfffff000, 15)
	s.mtu = 200
	var pkts []*rtp.Packet
	pkts = append(pkts, s.frame(vp8Frame(rng, 500, true))...)
	pkts = append(pkts, s.padding(3)...)
	pkts = append(pkts, s.frame(vp8Frame(rng, 300, false))...)
	pkts = append(pkts, s.frame(vp8Frame(rng, 100, false))...)
	pkts = append(pkts, s.frame(vp8Frame(rng, 400, true))...)
	inOrder := script(0, pkts, []byte{0, 1, 30})
	re := append([]*rtp.Packet(nil), pkts...)
	re[1], re[3] = re[3], re[1]
	re[7], re[8] = re[8], re[7]
	reordered := script(2, re, []byte{0, 5, 30})
	lost := script(1, append(append([]*rtp.Packet(nil), pkts[:4]...), pkts[5:]...), []byte{10, 200})
	bad := *pkts[2]
	bad.Payload = []byte{0x80}
	malformed := script(0, append(append([]*rtp.Packet(nil), pkts[:2]...), append([]*rtp.Packet{&bad}, pkts[3:]...)...), []byte{1})
	tiny := script(4, pkts, []byte{3})
	return [][]byte{inOrder, reordered, lost, malformed, {0}, {1, 0, 0, 0, 0}, tiny}
}

// FuzzVideoPush feeds Video arbitrary packet scripts. It must never panic,
// must respect its bounds, and what it releases must be sane frames made of
// pushed bytes.
func FuzzVideoPush(f *testing.F) {
	for _, s := range videoSeeds() {
		f.Add(s)
	}
	f.Fuzz(runVideoScript)
}

func runVideoScript(t *testing.T, data []byte) {
	{
		cfg, rtt, pkts := parseScript(data)
		c := VideoConfig{}
		if cfg&1 != 0 {
			c = VideoConfig{MaxPackets: 64, MaxBytes: 64 << 10, MaxFrameSize: 5000}
		}
		if cfg&4 != 0 {
			c.MaxFrameSize = 100
		}
		v := NewVideo(c)
		if rtt > 0 {
			v.SetRTT(rtt)
		}
		var pushed []byte // every byte pushed, to check released data against
		released := uint64(0)
		pop := func(now time.Time) {
			for range 1 << 16 {
				need := v.NeedKeyFrame()
				fr, ok := v.Pop(now)
				if !ok {
					if d, ok := v.NextDeadline(); ok && !d.After(now) {
						t.Fatalf("deadline %v not after now %v", d, now)
					}
					return
				}
				released++
				if len(fr.Data) == 0 || len(fr.Data) > v.cfg.MaxFrameSize {
					t.Fatalf("frame of %d bytes", len(fr.Data))
				}
				if fr.KeyFrame != (fr.Data[0]&1 == 0) {
					t.Fatalf("KeyFrame %v for first byte %#x", fr.KeyFrame, fr.Data[0])
				}
				if !fr.KeyFrame && need {
					t.Fatal("a delta frame released while a key frame was needed")
				}
				if !bytes.Contains(pushed, fr.Data[:1]) {
					t.Fatal("released a byte that was never pushed")
				}
			}
			t.Fatal("Pop does not stop")
		}
		for _, sp := range pkts {
			if sp.popExpired {
				if d, ok := v.NextDeadline(); ok && !d.After(sp.at) {
					pop(d)
				}
			}
			v.Push(&sp.pkt, sp.at)
			pushed = append(pushed, sp.pkt.Payload...)
			pop(sp.at)
			st := v.Stats()
			if st.Held > v.cfg.MaxPackets || st.HeldBytes > v.cfg.MaxBytes || st.Held < 0 || st.HeldBytes < 0 {
				t.Fatalf("bounds: %+v", st)
			}
		}
		if len(pkts) > 0 {
			pop(pkts[len(pkts)-1].at.Add(time.Hour))
		}
		st := v.Stats()
		if st.Packets != uint64(len(pkts)) || st.FramesReleased != released {
			t.Fatalf("stats %+v after %d packets, %d frames", st, len(pkts), released)
		}
	}
}

// FuzzAudioPush feeds Audio arbitrary packet scripts: packets come out in
// sequence order (between resets), each with a payload pushed for its
// sequence number, and the bounds hold.
func FuzzAudioPush(f *testing.F) {
	for _, s := range [][]byte{
		{0, 0, 1, 20, 2, 0xfc, 1, 0, 2, 20, 1, 0xfc, 0, 0xff, 5, 3, 0xfc, 0, 0},
		{1, 0, 1, 0, 0, 0, 1, 0, 1, 8, 5, 100, 1, 9, 8, 0x40, 1, 0, 0},
		{0},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, pkts := parseScript(data)
		c := AudioConfig{}
		if cfg&1 != 0 {
			c = AudioConfig{MaxPackets: 64, MaxBytes: 64 << 10, Hold: 5 * time.Millisecond}
		}
		a := NewAudio(c)
		bySeq := map[uint16][][]byte{}
		var last uint16
		haveLast := false
		resets := uint64(0)
		pop := func(now time.Time) {
			for range 1 << 16 {
				p, ok := a.Pop(now)
				if !ok {
					return
				}
				if st := a.Stats(); st.Resets != resets {
					resets, haveLast = st.Resets, false
				}
				if haveLast && int16(p.SequenceNumber-last) <= 0 {
					t.Fatalf("released %d after %d", p.SequenceNumber, last)
				}
				last, haveLast = p.SequenceNumber, true
				found := false
				for _, q := range bySeq[p.SequenceNumber] {
					found = found || bytes.Equal(q, p.Payload)
				}
				if !found || len(p.Payload) == 0 {
					t.Fatalf("released a payload never pushed for %d", p.SequenceNumber)
				}
			}
			t.Fatal("Pop does not stop")
		}
		for _, sp := range pkts {
			if sp.popExpired {
				if d, ok := a.NextDeadline(); ok && !d.After(sp.at) {
					pop(d)
				}
			}
			a.Push(&sp.pkt, sp.at)
			bySeq[sp.pkt.SequenceNumber] = append(bySeq[sp.pkt.SequenceNumber], sp.pkt.Payload)
			pop(sp.at)
			st := a.Stats()
			if st.Held > a.cfg.MaxPackets || st.HeldBytes > a.cfg.MaxBytes {
				t.Fatalf("bounds: %+v", st)
			}
		}
	})
}

// FuzzParseVP8 checks the descriptor parser against pion's VP8 depacketizer.
func FuzzParseVP8(f *testing.F) {
	for _, s := range [][]byte{
		{0x90, 0x80, 0x80, 0x01, 0x9d},
		{0x90, 0x80, 0x05, 0x00},
		{0x10, 0x9d},
		{0x80, 0xf0, 0x80, 0x01, 0x02, 0x03, 0x04},
		{0x80},
		{0x97, 0x00, 0x01},
		{},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, ok := parseVP8(b)
		var p codecs.VP8Packet
		payload, err := p.Unmarshal(b)
		want := err == nil && len(payload) > 0
		if ok != want {
			t.Fatalf("%x: ok %v, pion: %v with %d bytes", b, ok, err, len(payload))
		}
		if !ok {
			return
		}
		if d.size != len(b)-len(payload) {
			t.Fatalf("%x: descriptor %d bytes, pion %d", b, d.size, len(b)-len(payload))
		}
		if d.start != (p.S == 1 && p.PID == 0) {
			t.Fatalf("%x: start %v, pion S=%d PID=%d", b, d.start, p.S, p.PID)
		}
		switch {
		case p.I == 0 && d.picBits != 0:
			t.Fatalf("%x: PictureID without I", b)
		case p.I == 1 && (d.pic != p.PictureID || d.picBits == 0):
			t.Fatalf("%x: PictureID %d/%d bits, pion %d", b, d.pic, d.picBits, p.PictureID)
		case d.picBits == 15 && b[2]&0x80 == 0, d.picBits == 7 && b[2]&0x80 != 0:
			t.Fatalf("%x: %d-bit PictureID", b, d.picBits)
		}
	})
}
