package smpcall_test

import (
	"context"
	"encoding/binary"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/smp"
)

// BenchmarkMediaPath measures one audio frame (an Opus-sized 120 bytes)
// from a Source to the far Sink through a connected call, frame by frame
// (the next frame goes once the last one arrived, as a live call's frames
// go one by one), against the same frames through a raw pion pair in the
// same run. The harness is the same on both: the benchmark hands each
// frame over a channel to a sending goroutine (the SDK's send loop reading
// its Source, or the raw pair's sender calling WriteSample), and the far
// side's reader (the SDK's receive path into its Sink, or the raw pair's
// reader) hands it back over a channel. The raw pair is plain pion (default
// codecs and interceptors, one audio transceiver) and carries frames as
// long as the SDK's encrypted ones, unencrypted.
//
// Reported: ns/op is the one-way time of a frame; cpu-ns/op the process's
// CPU time per frame (both ends, getrusage); allocs/op every allocation of
// the process per frame (pion's too); smpcall-allocs/op the allocations
// made by this module's code (the SDK's send and receive paths, found by
// their stacks in a memory profile of a second, untimed pass). The
// sub-benchmarks are named impl=…, so that `benchstat -col /impl` puts
// them side by side.
func BenchmarkMediaPath(b *testing.B) {
	b.Run("impl=raw-pion", func(b *testing.B) {
		in, out, stop := rawMediaPair(b)
		defer stop()
		runMediaPath(b, in, out)
	})
	b.Run("impl=smpcall", func(b *testing.B) {
		in, out, stop := sdkMediaPair(b)
		defer stop()
		runMediaPath(b, in, out)
	})
}

const mediaFrameBytes = 120

// mediaFrame fills f with frame i: an Opus TOC byte, then the index.
func mediaFrame(f []byte, i uint32) {
	f[0] = 0x78
	binary.BigEndian.PutUint32(f[1:], i)
}

func frameIndex(f []byte) uint32 { return binary.BigEndian.Uint32(f[1:]) }

// runMediaPath sends frames one at a time: in takes the frame's index; out
// gives back the index of each frame that arrived.
func runMediaPath(b *testing.B, in chan<- uint32, out <-chan uint32) {
	var next uint32
	send := func() {
		next++
		in <- next
		for {
			select {
			case got := <-out:
				if got == next {
					return
				}
				// An older frame (a warm-up one, late): keep waiting.
			case <-time.After(5 * time.Second):
				b.Fatalf("frame %d did not arrive", next)
			}
		}
	}
	for range 200 { // warm up: buffers, pools, the paths' first packets
		send()
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		send()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	// Our allocations, by stack, over a pass at full profiling rate.
	const frames = 500
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	before := ownAllocs()
	for range frames {
		send()
	}
	after := ownAllocs()
	runtime.MemProfileRate = old
	b.ReportMetric(float64(after-before)/frames, "smpcall-allocs/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ownAllocs counts the objects allocated so far by this module's
// non-test code: allocations whose innermost caller outside the runtime
// and the standard library is a function of github.com/smpcall/smpcall.
func ownAllocs() int64 {
	runtime.GC() // the profile is as of the last completed GC
	runtime.GC()
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, true)
	for {
		recs = make([]runtime.MemProfileRecord, n+50)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	var total int64
	for i := range recs {
		frames := runtime.CallersFrames(recs[i].Stack())
		for {
			f, more := frames.Next()
			name := f.Function
			if isStd(name) {
				if !more {
					break
				}
				continue
			}
			if strings.HasPrefix(name, "github.com/smpcall/smpcall.") || strings.HasPrefix(name, "github.com/smpcall/smpcall/") {
				total += recs[i].AllocObjects
			}
			break
		}
	}
	return total
}

// isStd reports whether a function belongs to the runtime or the standard
// library (its import path has no dot in its first element).
func isStd(fn string) bool {
	first, _, _ := strings.Cut(fn, "/")
	return !strings.Contains(first, ".") || strings.HasPrefix(fn, "runtime.")
}

// chanSource is a Source fed over a channel.
type chanSource struct {
	in  <-chan uint32
	buf []byte
}

func (s *chanSource) ReadFrame(ctx context.Context) (audio.Frame, error) {
	select {
	case i := <-s.in:
		mediaFrame(s.buf, i)
		return audio.Frame{Data: s.buf}, nil
	case <-ctx.Done():
		return audio.Frame{}, ctx.Err()
	}
}

// indexSink hands back each frame's index. It only reads a frame during
// WriteFrame.
type indexSink struct{ out chan<- uint32 }

func (s indexSink) WriteFrame(f audio.Frame) error {
	if len(f.Data) >= 5 {
		s.out <- frameIndex(f.Data)
	}
	return nil
}

// BorrowsFrames lets the SDK decrypt into a buffer it reuses (smpcall.FrameBorrower).
func (indexSink) BorrowsFrames() bool { return true }

func sdkMediaPair(b *testing.B) (chan<- uint32, <-chan uint32, func()) {
	in, out := make(chan uint32), make(chan uint32, 16)
	n := smp.NewNetwork(nil)
	ac, _ := n.AddUser("alice", nil)
	bc, _ := n.AddUser("bob", nil)
	bobID, aliceID, err := n.Connect("alice", "bob")
	if err != nil {
		b.Fatal(err)
	}
	alice, err := smpcall.NewClient(ac, rtcConfig(nil))
	if err != nil {
		b.Fatal(err)
	}
	bob, err := smpcall.NewClient(bc, rtcConfig(nil))
	if err != nil {
		b.Fatal(err)
	}
	stop := func() {
		_ = alice.Close()
		_ = bob.Close()
		_ = n.Close()
	}
	ctx := context.Background()
	call, err := alice.PlaceCall(ctx, bobID, &smpcall.CallOptions{Media: smpcall.MediaAudio,
		Sources: smpcall.Sources{Mic: &chanSource{in: in, buf: make([]byte, mediaFrameBytes)}}})
	if err != nil {
		stop()
		b.Fatal(err)
	}
	inv, err := bob.NextInvitation(ctx)
	if err != nil {
		stop()
		b.Fatal(err)
	}
	answer, err := bob.AcceptCall(ctx, aliceID, &smpcall.CallOptions{Sinks: smpcall.Sinks{Mic: indexSink{out}}})
	if err != nil || inv.Contact.ContactID != aliceID {
		stop()
		b.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, k := range []*smpcall.Call{call, answer} {
		if _, err := k.WaitConnected(wctx); err != nil {
			stop()
			b.Fatal(err)
		}
	}
	return in, out, stop
}

// rawMediaPair is two plain pion peers on loopback, connected, with a
// sending goroutine on one and a reading goroutine on the other.
func rawMediaPair(b *testing.B) (chan<- uint32, <-chan uint32, func()) {
	in, out := make(chan uint32), make(chan uint32, 16)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(*loopbackSettings()))
	pa, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	pb, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	stop := func() {
		close(done)
		_ = pa.Close()
		_ = pb.Close()
		wg.Wait()
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "raw")
	if err != nil {
		b.Fatal(err)
	}
	sender, err := pa.AddTrack(track)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pb.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio); err != nil {
		b.Fatal(err)
	}
	wg.Add(2)
	go func() { // pion needs RTCP read for its interceptors
		defer wg.Done()
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	go func() { // the sender: the same frames as the SDK's, as long as encrypted ones
		defer wg.Done()
		buf := make([]byte, mediaFrameBytes+framecrypt.Overhead)
		for {
			select {
			case i := <-in:
				mediaFrame(buf, i)
				if err := track.WriteSample(media.Sample{Data: buf, Duration: 20 * time.Millisecond}); err != nil {
					return
				}
			case <-done:
				return
			}
		}
	}()
	pb.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			var p rtp.Packet
			for {
				n, _, err := t.Read(buf)
				if err != nil {
					return
				}
				if p.Unmarshal(buf[:n]) == nil && len(p.Payload) >= 5 {
					select {
					case out <- frameIndex(p.Payload):
					case <-done:
						return
					}
				}
			}
		}()
	})
	connected := func(pc *webrtc.PeerConnection) chan struct{} {
		ch := make(chan struct{})
		var once sync.Once
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected {
				once.Do(func() { close(ch) })
			}
		})
		return ch
	}
	ca, cb := connected(pa), connected(pb)
	offer, _ := pa.CreateOffer(nil)
	ga := webrtc.GatheringCompletePromise(pa)
	_ = pa.SetLocalDescription(offer)
	<-ga
	_ = pb.SetRemoteDescription(*pa.LocalDescription())
	answer, _ := pb.CreateAnswer(nil)
	gb := webrtc.GatheringCompletePromise(pb)
	_ = pb.SetLocalDescription(answer)
	<-gb
	_ = pa.SetRemoteDescription(*pb.LocalDescription())
	for _, ch := range []chan struct{}{ca, cb} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			stop()
			b.Fatal("raw pair did not connect")
		}
	}
	return in, out, stop
}
