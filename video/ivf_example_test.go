package video_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/smpcall/smpcall/video"
)

// Copy an IVF file frame by frame, as a call would from a camera file to a
// recording.
func ExampleOpenIVFSource() {
	src, err := video.OpenIVFSource("../testdata/media/video.ivf", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()

	dir, err := os.MkdirTemp("", "ivf")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	sink, err := video.CreateIVFSink(filepath.Join(dir, "copy.ivf"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}

	keys := 0
	for {
		f, err := src.ReadFrame(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if f.KeyFrame {
			keys++
		}
		if err := sink.WriteFrame(f); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := sink.Close(); err != nil {
		fmt.Println(err)
		return
	}
	h := src.Header()
	fmt.Printf("%s %dx%d: %d frames, %d key frames\n", h.FourCC, h.Width, h.Height, sink.Frames(), keys)
	// Output: VP80 160x120: 90 frames, 3 key frames
}
