package jitter

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

var errTimeout = errors.New("read deadline")

// link is one direction of a lossy network in real time: each datagram is
// dropped with probability loss or delivered after delay + [0, jitter).
type link struct {
	mu            sync.Mutex
	rng           *rand.Rand
	loss          float64
	delay, jitter time.Duration
	ch            chan []byte
	wg            sync.WaitGroup
	sent, dropped atomic.Int64
}

func newLink(seed uint64, loss float64, delay, jitter time.Duration) *link {
	return &link{rng: rand.New(rand.NewPCG(seed, 7)), loss: loss, delay: delay, jitter: jitter, ch: make(chan []byte, 4096)}
}

func (l *link) send(b []byte) {
	l.mu.Lock()
	drop := l.rng.Float64() < l.loss
	d := l.delay + uniform(l.rng, l.jitter)
	l.mu.Unlock()
	l.sent.Add(1)
	if drop {
		l.dropped.Add(1)
		return
	}
	l.wg.Add(1)
	time.AfterFunc(d, func() {
		defer l.wg.Done()
		select {
		case l.ch <- b:
		default:
		}
	})
}

// TestPionNACK runs a VP8 stream through pion's own NACK interceptors (the
// generator on the receiving side with the interval recommended for
// smpcall, the responder on the sending side with its defaults) over a
// real-time link with 5 % loss each way, into a Video read the way the
// SDK's track reader does. The retransmissions pion sends must reach the
// buffer in time: without them about one frame in six would lose a packet
// and take the frames after it down until the next key frame.
func TestPionNACK(t *testing.T) {
	const (
		frames = 60
		oneWay = 20 * time.Millisecond
	)
	info := &interceptor.StreamInfo{SSRC: 0x1234, MimeType: "video/VP8", ClockRate: 90000, PayloadType: 96,
		RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}
	media := newLink(1, 0.05, oneWay, 10*time.Millisecond)
	feedback := newLink(2, 0.05, oneWay, 10*time.Millisecond)
	done := make(chan struct{})
	var workers sync.WaitGroup

	// Sending side: pion's NACK responder in front of the lossy link.
	respF, err := nack.NewResponderInterceptor()
	require.NoError(t, err)
	resp, err := respF.NewInterceptor("")
	require.NoError(t, err)
	out := resp.BindLocalStream(info, interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, _ interceptor.Attributes) (int, error) {
		b, err := (&rtp.Packet{Header: *h, Payload: payload}).Marshal()
		if err == nil {
			media.send(b)
		}
		return len(payload), err
	}))
	rtcpIn := resp.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		select {
		case p := <-feedback.ch:
			return copy(b, p), a, nil
		case <-done:
			return 0, nil, errTimeout
		}
	}))
	workers.Add(1)
	go func() { // the sender's RTCP reader, which feeds the responder
		defer workers.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := rtcpIn.Read(buf, nil); err != nil {
				return
			}
		}
	}()

	// Receiving side: pion's NACK generator on the track.
	genF, err := nack.NewGeneratorInterceptor(nack.GeneratorInterval(20 * time.Millisecond))
	require.NoError(t, err)
	gen, err := genF.NewInterceptor("")
	require.NoError(t, err)
	var nacks atomic.Int64
	gen.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		b, err := rtcp.Marshal(pkts)
		if err == nil {
			nacks.Add(1)
			feedback.send(b)
		}
		return len(b), err
	}))
	var deadline atomic.Int64 // unix ns; 0: none
	track := gen.BindRemoteStream(info, interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		var timeout <-chan time.Time
		if d := deadline.Load(); d != 0 {
			tm := time.NewTimer(time.Until(time.Unix(0, d)))
			defer tm.Stop()
			timeout = tm.C
		}
		select {
		case p := <-media.ch:
			return copy(b, p), a, nil
		case <-timeout:
			return 0, nil, errTimeout
		case <-done:
			return 0, nil, errors.ErrUnsupported
		}
	}))

	// The sender: 30 frames a second, a key frame every 90 frames or on PLI.
	var sentMu sync.Mutex
	sent := map[uint32][]byte{}
	order := map[uint32]int{}
	var pli atomic.Bool
	workers.Add(1)
	go func() {
		defer workers.Done()
		rng := rand.New(rand.NewPCG(3, 3))
		s := newSender(65000, 0, 15)
		s.ssrc = info.SSRC
		next := time.Now()
		for i := range frames {
			key := i%90 == 0 || pli.Swap(false)
			size := 300 + rng.IntN(4000)
			if key {
				size = 12000
			}
			f := vp8Frame(rng, size, key)
			sentMu.Lock()
			sent[s.ts], order[s.ts] = f, i
			sentMu.Unlock()
			for _, p := range s.frame(f) {
				if _, err := out.Write(&p.Header, p.Payload, nil); err != nil {
					t.Error(err)
				}
			}
			next = next.Add(time.Second / 30)
			time.Sleep(time.Until(next))
		}
	}()

	// The receiver: the SDK's reading loop.
	v := NewVideo(VideoConfig{})
	v.SetRTT(2 * oneWay)
	released, lastIdx := 0, -1
	var lastPLI time.Time
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	end := time.Now().Add(time.Duration(frames)*time.Second/30 + time.Second)
	for time.Now().Before(end) {
		if d, ok := v.NextDeadline(); ok {
			deadline.Store(d.UnixNano())
		} else {
			deadline.Store(time.Now().Add(50 * time.Millisecond).UnixNano()) // to notice the end
		}
		n, _, err := track.Read(buf, nil)
		now := time.Now()
		if err == nil {
			require.NoError(t, pkt.Unmarshal(buf[:n]))
			v.Push(&pkt, now)
		}
		for {
			f, ok := v.Pop(now)
			if !ok {
				break
			}
			sentMu.Lock()
			want, i := sent[f.Timestamp], order[f.Timestamp]
			sentMu.Unlock()
			require.True(t, bytes.Equal(want, f.Data), "frame %d differs", i)
			require.Greater(t, i, lastIdx, "out of order")
			require.True(t, f.KeyFrame || i == lastIdx+1, "delta frame %d after frame %d", i, lastIdx)
			lastIdx = i
			released++
		}
		if v.NeedKeyFrame() && now.Sub(lastPLI) > 200*time.Millisecond {
			lastPLI = now
			pli.Store(true)
		}
	}
	close(done)
	workers.Wait()
	media.wg.Wait()
	feedback.wg.Wait()
	require.NoError(t, gen.Close())
	require.NoError(t, resp.Close())

	st := v.Stats()
	t.Logf("released %d of %d frames; media packets sent %d (incl. resends), dropped %d; NACK packets %d (%d dropped); %+v",
		released, frames, media.sent.Load(), media.dropped.Load(), nacks.Load(), feedback.dropped.Load(), st)
	require.Positive(t, media.dropped.Load(), "the link lost nothing: the test proves nothing")
	require.Positive(t, st.Reordered, "no retransmission reached the buffer")
	require.GreaterOrEqual(t, released, frames*85/100)
}
