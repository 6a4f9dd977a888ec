package smpcall

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/stretchr/testify/require"
)

// A Client builds its pion API once: resolve makes it, with one logger
// per scope for all calls unless the embedder brought a logger factory.
func TestPionSharedPerConfig(t *testing.T) {
	cfg, err := (&Config{}).resolve()
	require.NoError(t, err)
	require.NotNil(t, cfg.pion)
	require.NotNil(t, cfg.pion.api)
	require.Len(t, cfg.pion.rc.ICEServers, len(DefaultICEServers))

	lc := &loggerCache{f: logging.NewDefaultLoggerFactory(), m: map[string]logging.LeveledLogger{}}
	require.Same(t, lc.NewLogger("ice"), lc.NewLogger("ice"))
	require.NotSame(t, lc.NewLogger("ice"), lc.NewLogger("dtls"))

	relay, err := (&Config{RelayOnly: true, ICEServers: []ICEServer{{URLs: []string{"turn:example.com:3478"}, Username: "u", Credential: "p"}}}).resolve()
	require.NoError(t, err)
	require.Equal(t, "relay", relay.pion.rc.ICETransportPolicy.String())
}

// countingFactory makes interceptors that record what lazyBind hands them.
type countingFactory struct{ made *[]*countingInterceptor }

func (f countingFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	c := &countingInterceptor{reads: map[uint32]int{}, writes: map[uint32]int{}}
	*f.made = append(*f.made, c)
	return c, nil
}

type countingInterceptor struct {
	interceptor.NoOp
	writers, rtcpReads int
	remote, local      []uint32
	reads, writes      map[uint32]int
	closed             bool
}

func (c *countingInterceptor) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	c.writers++
	return w
}

func (c *countingInterceptor) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		c.rtcpReads++
		return r.Read(b, a)
	})
}

func (c *countingInterceptor) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	c.remote = append(c.remote, info.SSRC)
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		c.reads[info.SSRC]++
		return n, a, err
	})
}

func (c *countingInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	c.local = append(c.local, info.SSRC)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, a interceptor.Attributes) (int, error) {
		c.writes[info.SSRC]++
		return w.Write(h, p, a)
	})
}

func (c *countingInterceptor) Close() error { c.closed = true; return nil }

func rtpPacket(t *testing.T, seq uint16, ext bool) []byte {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, SSRC: 7}, Payload: []byte{1, 2, 3}}
	if ext {
		require.NoError(t, p.SetExtension(4, []byte{0, 1}))
	}
	b, err := p.Marshal()
	require.NoError(t, err)
	return b
}

// packets is a reader that returns pkts in turn (the last one again and again).
func packets(pkts ...[]byte) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n := copy(b, pkts[0])
		if len(pkts) > 1 {
			pkts = pkts[1:]
		}
		return n, a, nil
	})
}

var nopRTCPWriter = interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) { return 0, nil })

var oneRTCP = interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	return copy(b, []byte{0x80, 201, 0, 1, 0, 0, 0, 1}), a, nil
})

// The interceptor is made at the first packet of a stream it concerns,
// gets the RTCP writer then, and reads that packet too (it counts exactly
// what it would have counted bound from the start); streams it does not
// concern never make it; RTCP goes past it until it exists, then through.
func TestLazyBindRemote(t *testing.T) {
	var made []*countingInterceptor
	li, err := lazyBindFactory{inner: countingFactory{&made}, remote: remoteNACK, rtcp: true}.NewInterceptor("pc")
	require.NoError(t, err)
	require.NotNil(t, li.BindRTCPWriter(nopRTCPWriter), "the writer is passed back")
	rtcpIn := li.BindRTCPReader(oneRTCP)
	audio := li.BindRemoteStream(&interceptor.StreamInfo{SSRC: 1}, packets(rtpPacket(t, 1, false)))
	video := li.BindRemoteStream(&interceptor.StreamInfo{SSRC: 2, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}},
		packets(rtpPacket(t, 10, false), rtpPacket(t, 11, false), rtpPacket(t, 12, false)))
	buf := make([]byte, 1500)
	_, _, err = audio.Read(buf, nil)
	require.NoError(t, err)
	_, _, err = rtcpIn.Read(buf, nil)
	require.NoError(t, err)
	require.Empty(t, made, "nothing made before a packet that concerns it")

	var seqs []uint16
	for range 3 {
		n, _, err := video.Read(buf, nil)
		require.NoError(t, err)
		var p rtp.Packet
		require.NoError(t, p.Unmarshal(buf[:n]))
		seqs = append(seqs, p.SequenceNumber)
	}
	require.Equal(t, []uint16{10, 11, 12}, seqs, "every packet comes through, once, in order")
	require.Len(t, made, 1)
	in := made[0]
	require.Equal(t, 1, in.writers, "the writer, at once")
	require.Equal(t, []uint32{2}, in.remote)
	require.Equal(t, 3, in.reads[2], "it saw the first video packet too")
	_, _, err = rtcpIn.Read(buf, nil)
	require.NoError(t, err)
	require.Equal(t, 1, in.rtcpReads, "RTCP through it, now that it exists")
	require.NoError(t, li.Close())
	require.True(t, in.closed)
}

// With an extension rule only a packet carrying it makes the interceptor;
// a stream that has not carried it in its first lazyGiveUp packets never
// does; a stream without it negotiated goes past.
func TestLazyBindExtension(t *testing.T) {
	var made []*countingInterceptor
	rule := remoteWithExtension(sdp.TransportCCURI)
	info := &interceptor.StreamInfo{SSRC: 3, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 4}}}
	buf := make([]byte, 1500)

	li, err := lazyBindFactory{inner: countingFactory{&made}, remote: rule}.NewInterceptor("pc")
	require.NoError(t, err)
	li.BindRTCPWriter(nopRTCPWriter)
	r := li.BindRemoteStream(info, packets(rtpPacket(t, 1, false), rtpPacket(t, 2, false), rtpPacket(t, 3, true), rtpPacket(t, 4, true)))
	for range 2 {
		_, _, err := r.Read(buf, nil)
		require.NoError(t, err)
	}
	require.Empty(t, made, "no packet carried the sequence number yet")
	_, _, _ = r.Read(buf, nil)
	_, _, _ = r.Read(buf, nil)
	require.Len(t, made, 1)
	require.Equal(t, 1, made[0].writers)
	require.Equal(t, 2, made[0].reads[3])
	require.NoError(t, li.Close())

	li, err = lazyBindFactory{inner: countingFactory{&made}, remote: rule}.NewInterceptor("pc")
	require.NoError(t, err)
	li.BindRTCPWriter(nopRTCPWriter)
	pkts := make([][]byte, lazyGiveUp+1)
	for i := range pkts {
		pkts[i] = rtpPacket(t, uint16(i), false)
	}
	r = li.BindRemoteStream(info, packets(append(pkts, rtpPacket(t, 999, true))...))
	for range lazyGiveUp + 3 {
		_, _, err := r.Read(buf, nil)
		require.NoError(t, err)
	}
	require.Len(t, made, 1, "not made by a packet after it stopped looking")
	require.NoError(t, li.Close())

	li, err = lazyBindFactory{inner: countingFactory{&made}, remote: rule}.NewInterceptor("pc")
	require.NoError(t, err)
	_, _, err = li.BindRemoteStream(&interceptor.StreamInfo{SSRC: 9}, packets(rtpPacket(t, 1, true))).Read(buf, nil)
	require.NoError(t, err)
	require.Len(t, made, 1, "the extension is not negotiated on this stream")
	require.NoError(t, li.Close())
}

// Local streams make it at their first write, which it sees; closed
// before any packet, it is never made, and packets after Close go past.
func TestLazyBindLocal(t *testing.T) {
	var made []*countingInterceptor
	li, err := lazyBindFactory{inner: countingFactory{&made}, local: allStreams}.NewInterceptor("pc")
	require.NoError(t, err)
	li.BindRTCPWriter(nopRTCPWriter)
	var wrote int
	sink := interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) {
		wrote++
		return 0, nil
	})
	w := li.BindLocalStream(&interceptor.StreamInfo{SSRC: 5}, sink)
	require.Empty(t, made)
	for range 3 {
		_, err := w.Write(&rtp.Header{}, nil, nil)
		require.NoError(t, err)
	}
	require.Len(t, made, 1)
	require.Equal(t, []uint32{5}, made[0].local)
	require.Equal(t, 3, made[0].writes[5])
	require.Equal(t, 1, made[0].writers)
	require.Equal(t, 3, wrote)
	require.NoError(t, li.Close())

	idle, err := lazyBindFactory{inner: countingFactory{&made}, local: allStreams}.NewInterceptor("pc")
	require.NoError(t, err)
	idle.BindRTCPWriter(nopRTCPWriter)
	w = idle.BindLocalStream(&interceptor.StreamInfo{SSRC: 6}, sink)
	require.NoError(t, idle.Close())
	_, err = w.Write(&rtp.Header{}, nil, nil)
	require.NoError(t, err)
	require.Len(t, made, 1, "never made")
	require.Equal(t, 4, wrote, "the packet went past")

	// The NACK responder's rule: only a stream with NACK feedback makes it.
	nackOnly, err := lazyBindFactory{inner: countingFactory{&made}, local: hasNACK, rtcp: true}.NewInterceptor("pc")
	require.NoError(t, err)
	_, err = nackOnly.BindLocalStream(&interceptor.StreamInfo{SSRC: 7}, sink).Write(&rtp.Header{}, nil, nil)
	require.NoError(t, err)
	require.Len(t, made, 1, "audio does not make it")
	_, err = nackOnly.BindLocalStream(&interceptor.StreamInfo{SSRC: 8, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}, sink).Write(&rtp.Header{}, nil, nil)
	require.NoError(t, err)
	require.Len(t, made, 2, "video does")
	require.Equal(t, []uint32{8}, made[1].local)
	require.NoError(t, nackOnly.Close())

	// Options the factory refuses fail when the registry is built.
	require.Error(t, lazyBindFactory{inner: failingFactory{}}.check())
}

type failingFactory struct{}

func (failingFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return nil, errors.New("bad options")
}

// With pion's own report interceptor: receiver reports go out about the
// remote stream that sent, never about the one that did not (RFC 3550
// §6.4.2).
func TestLazyBindReceiverReportsOnlyHeardStreams(t *testing.T) {
	f, err := report.NewReceiverInterceptor(report.ReceiverInterval(5 * time.Millisecond))
	require.NoError(t, err)
	li, err := lazyBindFactory{inner: f, remote: remoteAll, rtcp: true}.NewInterceptor("pc")
	require.NoError(t, err)
	var mu sync.Mutex
	about := map[uint32]int{}
	li.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pkts {
			if rr, ok := p.(*rtcp.ReceiverReport); ok {
				for _, r := range rr.Reports {
					about[r.SSRC]++
				}
			}
		}
		return 0, nil
	}))
	stream := func(ssrc uint32) *interceptor.StreamInfo {
		return &interceptor.StreamInfo{SSRC: ssrc, ClockRate: 48000}
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1, SSRC: 7}, Payload: []byte{1}}
	b, err := pkt.Marshal()
	require.NoError(t, err)
	heard := li.BindRemoteStream(stream(7), packets(b))
	li.BindRemoteStream(stream(8), packets(b)) // never read: silent
	_, _, err = heard.Read(make([]byte, 1500), nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return about[7] >= 3
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, li.Close())
	mu.Lock()
	defer mu.Unlock()
	require.Zero(t, about[8])
}
