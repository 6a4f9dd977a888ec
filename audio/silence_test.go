package audio

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSilenceSource(t *testing.T) {
	var _ Source = (*SilenceSource)(nil)
	s := NewSilenceSource(&SilenceSourceOptions{Duration: time.Second})
	frames := oggReadAll(t, s)
	require.Len(t, frames, 50)
	for _, f := range frames {
		require.Equal(t, []byte{0xf8, 0xff, 0xfe}, f.Data)
		require.Equal(t, 20*time.Millisecond, f.Duration)
		n, err := oggPacketSamples(f.Data)
		require.NoError(t, err)
		require.Equal(t, 960, n)
	}
	frames[0].Data[0] = 0 // each Data is the caller's own
	require.Equal(t, byte(0xf8), frames[1].Data[0])
	require.Equal(t, byte(0xf8), SilencePacket()[0])

	_, err := s.ReadFrame(context.Background())
	require.ErrorIs(t, err, io.EOF)

	// Endless by default.
	endless := NewSilenceSource(nil)
	for range 1000 {
		_, err := endless.ReadFrame(context.Background())
		require.NoError(t, err)
	}
}

// TestSilenceDecodes: opusdec decodes the silence packets to 20 ms of
// digital silence each.
func TestSilenceDecodes(t *testing.T) {
	frames := oggReadAll(t, NewSilenceSource(&SilenceSourceOptions{Duration: time.Second}))
	for _, ch := range []int{1, 2} {
		out := oggWriteAll(t, frames, &OggSinkOptions{Channels: ch, PreSkip: -1})
		wav := oggOpusdec(t, out, "--no-dither")
		require.Equal(t, ch, wav.channels)
		require.Equal(t, time.Second, wav.duration())
		for i, v := range wav.samples {
			require.Zero(t, v, "sample %d", i)
		}
	}
}

func TestSilenceSourcePaced(t *testing.T) {
	s := NewSilenceSource(&SilenceSourceOptions{Paced: true})
	start := time.Now()
	for range 6 {
		_, err := s.ReadFrame(context.Background())
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, time.Since(start), 5*20*time.Millisecond-time.Millisecond) // lower bound only
}

func TestSilenceSourceCancelAndClose(t *testing.T) {
	s := NewSilenceSource(&SilenceSourceOptions{Paced: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.ReadFrame(ctx)
	require.ErrorIs(t, err, context.Canceled)

	_, err = s.ReadFrame(context.Background())
	require.NoError(t, err)
	s.pace.next = time.Hour // the next frame is due in an hour

	// waitErr starts a ReadFrame, runs stop, and returns what ReadFrame did.
	waitErr := func(ctx context.Context, stop func()) error {
		errc := make(chan error, 1)
		go func() {
			_, err := s.ReadFrame(ctx)
			errc <- err
		}()
		time.Sleep(10 * time.Millisecond)
		stop()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second): // hang guard, not a timing check
			t.Fatal("ReadFrame did not return")
			return nil
		}
	}
	ctx, cancel = context.WithCancel(context.Background())
	require.ErrorIs(t, waitErr(ctx, cancel), context.Canceled)
	require.ErrorIs(t, waitErr(context.Background(), func() { require.NoError(t, s.Close()) }), ErrOggClosed)
	_, err = s.ReadFrame(context.Background())
	require.ErrorIs(t, err, ErrOggClosed)
	require.NoError(t, s.Close())
}
