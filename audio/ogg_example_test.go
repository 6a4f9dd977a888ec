package audio_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/smpcall/smpcall/audio"
)

// Copy an Ogg Opus file packet by packet, as a call would from a microphone
// file to a recording of what the peer heard.
func ExampleOpenOggSource() {
	src, err := audio.OpenOggSource("../testdata/media/tone.opus", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()

	dir, err := os.MkdirTemp("", "ogg")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	sink, err := audio.CreateOggSink(filepath.Join(dir, "copy.opus"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}

	var packets int
	var total time.Duration
	for {
		f, err := src.ReadFrame(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		packets++
		total += f.Duration
		if err := sink.WriteFrame(f); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := sink.Close(); err != nil {
		fmt.Println(err)
		return
	}
	h := src.Head()
	fmt.Printf("%d channels, pre-skip %d: %d packets, %v\n", h.Channels, h.PreSkip, packets, total)
	// Output: 2 channels, pre-skip 312: 151 packets, 3.02s
}

// A call that has nothing to say still sends audio: 20 ms silence packets.
func ExampleNewSilenceSource() {
	src := audio.NewSilenceSource(&audio.SilenceSourceOptions{Duration: 100 * time.Millisecond})
	defer src.Close()
	n := 0
	for {
		f, err := src.ReadFrame(context.Background())
		if err != nil {
			fmt.Println(n, "frames, then", err)
			return
		}
		n++
		_ = f.Data // one Opus packet
	}
	// Output: 5 frames, then EOF
}
