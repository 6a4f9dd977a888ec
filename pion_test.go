package smpcall

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/stretchr/testify/require"
)

// Receiver reports about a remote stream go out only once a packet of it
// came; everything else passes.
func TestHeardFilterDropsReportsAboutSilentStreams(t *testing.T) {
	i, err := heardFilterFactory{}.NewInterceptor("pc")
	require.NoError(t, err)
	var written []rtcp.Packet
	w := i.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		written = append(written, pkts...)
		return len(pkts), nil
	}))
	r := i.BindRemoteStream(&interceptor.StreamInfo{SSRC: 5}, interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return len(b), a, nil
	}))
	rr := func(ssrcs ...uint32) *rtcp.ReceiverReport {
		p := &rtcp.ReceiverReport{SSRC: 1}
		for _, s := range ssrcs {
			p.Reports = append(p.Reports, rtcp.ReceptionReport{SSRC: s})
		}
		return p
	}
	pli := &rtcp.PictureLossIndication{MediaSSRC: 5}

	_, err = w.Write([]rtcp.Packet{rr(5)}, nil)
	require.NoError(t, err)
	require.Empty(t, written, "nothing heard from 5 yet")
	_, _ = w.Write([]rtcp.Packet{pli}, nil)
	_, _ = w.Write([]rtcp.Packet{rr(9)}, nil)      // a stream the filter does not know
	_, _ = w.Write([]rtcp.Packet{rr(5, 9)}, nil)   // not pion's one-block report
	_, _ = w.Write([]rtcp.Packet{rr(5), pli}, nil) // a compound packet
	require.Len(t, written, 5)

	written = nil
	_, _, err = r.Read(make([]byte, 10), nil)
	require.NoError(t, err)
	_, _ = w.Write([]rtcp.Packet{rr(5)}, nil)
	require.Len(t, written, 1, "5 was heard")

	i.UnbindRemoteStream(&interceptor.StreamInfo{SSRC: 5})
	written = nil
	_, _ = w.Write([]rtcp.Packet{rr(5)}, nil)
	require.Len(t, written, 1, "forgotten: not ours to judge")
}

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

// countingFactory makes interceptors that record what lazyLoop hands them.
type countingFactory struct{ made *[]*countingInterceptor }

func (f countingFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	c := &countingInterceptor{}
	*f.made = append(*f.made, c)
	return c, nil
}

type countingInterceptor struct {
	interceptor.NoOp
	writers, streams, reads int
	closed                  bool
}

func (c *countingInterceptor) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	c.writers++
	return w
}

func (c *countingInterceptor) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	c.streams++
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		c.reads++
		return r.Read(b, a)
	})
}

func (c *countingInterceptor) Close() error { c.closed = true; return nil }

// lazyLoop starts the NACK generator at a stream's first packet when the
// stream has NACK feedback, and the TWCC sender at the first packet that
// carries its header extension; streams it does not serve never start it.
func TestLazyLoopStartsAtTheFirstPacketThatMatters(t *testing.T) {
	var made []*countingInterceptor
	packet := func(ext bool) []byte {
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1, SSRC: 7}, Payload: []byte{1, 2, 3}}
		if ext {
			require.NoError(t, p.SetExtension(4, []byte{0, 1}))
		}
		b, err := p.Marshal()
		require.NoError(t, err)
		return b
	}
	source := func(pkts ...[]byte) interceptor.RTPReader {
		return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			n := copy(b, pkts[0])
			if len(pkts) > 1 {
				pkts = pkts[1:]
			}
			return n, a, nil
		})
	}
	buf := make([]byte, 1500)
	w := interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) { return 0, nil })

	// NACK: an audio stream (no nack feedback) goes straight through;
	// a video stream starts the generator at its first packet.
	nackLoop, err := lazyLoopFactory{inner: countingFactory{&made}}.NewInterceptor("pc")
	require.NoError(t, err)
	nackLoop.BindRTCPWriter(w)
	audio := nackLoop.BindRemoteStream(&interceptor.StreamInfo{SSRC: 1}, source(packet(false)))
	video := nackLoop.BindRemoteStream(&interceptor.StreamInfo{SSRC: 2, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}, source(packet(false)))
	in := made[0]
	require.Equal(t, 1, in.streams, "the audio stream, handed over at once")
	require.Zero(t, in.writers, "not started before a packet")
	_, _, _ = audio.Read(buf, nil)
	require.Zero(t, in.writers, "audio does not start it")
	require.Equal(t, 1, in.reads, "the audio packet, through the inner interceptor")
	_, _, _ = video.Read(buf, nil)
	require.Equal(t, 1, in.writers, "started")
	require.Equal(t, 2, in.streams)
	require.Equal(t, 1, in.reads, "the first video packet came before")
	_, _, _ = video.Read(buf, nil)
	_, _, _ = video.Read(buf, nil)
	require.Equal(t, 3, in.reads, "then it sees every packet")
	require.NoError(t, nackLoop.Close())
	require.True(t, in.closed)

	// TWCC: only a packet with the extension starts it.
	twccLoop, err := lazyLoopFactory{inner: countingFactory{&made}, extURI: sdp.TransportCCURI}.NewInterceptor("pc")
	require.NoError(t, err)
	twccLoop.BindRTCPWriter(w)
	info := &interceptor.StreamInfo{SSRC: 3, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 4}}}
	r := twccLoop.BindRemoteStream(info, source(packet(false), packet(false), packet(true), packet(true)))
	in = made[1]
	for range 2 {
		n, _, err := r.Read(buf, nil)
		require.NoError(t, err)
		require.Equal(t, len(packet(false)), n, "packets pass through")
	}
	require.Zero(t, in.writers, "no packet carried the sequence number yet")
	_, _, _ = r.Read(buf, nil)
	require.Equal(t, 1, in.writers)
	_, _, _ = r.Read(buf, nil)
	require.Equal(t, 1, in.reads)
	require.NoError(t, twccLoop.Close())

	// A stream that does not carry the extension from the start never
	// starts it: lazyLoop stops looking.
	late, err := lazyLoopFactory{inner: countingFactory{&made}, extURI: sdp.TransportCCURI}.NewInterceptor("pc")
	require.NoError(t, err)
	late.BindRTCPWriter(w)
	pkts := make([][]byte, lazyGiveUp+1)
	for i := range pkts {
		pkts[i] = packet(false)
	}
	r = late.BindRemoteStream(info, source(append(pkts, packet(true))...))
	for range lazyGiveUp + 2 {
		_, _, err := r.Read(buf, nil)
		require.NoError(t, err)
	}
	require.Zero(t, made[2].writers, "not started by a packet after it stopped looking")
	require.NoError(t, late.Close())

	// Closed before any packet: never started, still closed.
	idle, err := lazyLoopFactory{inner: countingFactory{&made}}.NewInterceptor("pc")
	require.NoError(t, err)
	idle.BindRTCPWriter(w)
	require.NoError(t, idle.Close())
	require.Zero(t, made[3].writers)
	require.True(t, made[3].closed)
}
