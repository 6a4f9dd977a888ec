package browser

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/smpcall/smpcall/internal/testtool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func launch(t *testing.T) *Browser {
	t.Helper()
	path := testtool.Need(t, "chromium", "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Launch(ctx, &Options{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

// A page loads, evaluates JavaScript (promises too), reports its console
// and exceptions, and takes a screenshot that is a real PNG of the page.
func TestPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><body style="background:#00ff00"><script>console.log("hello", 42)</script></body>`)
	}))
	defer srv.Close()
	b := launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := b.NewPage(ctx, srv.URL)
	require.NoError(t, err)

	var n int
	require.NoError(t, p.Evaluate(ctx, `new Promise(r => setTimeout(() => r(6*7), 10))`, &n))
	require.Equal(t, 42, n)
	var s struct{ A []string }
	require.NoError(t, p.Evaluate(ctx, `({A: ["x", "y"]})`, &s))
	require.Equal(t, []string{"x", "y"}, s.A)
	err = p.Evaluate(ctx, `(() => { throw new Error("boom") })()`, nil)
	require.ErrorContains(t, err, "boom")
	require.NoError(t, p.WaitFor(ctx, `true`))
	require.Eventually(t, func() bool {
		for _, l := range p.Console() {
			if l == "log: hello 42" {
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond, "console: %q", p.Console())

	require.NoError(t, p.SetViewport(ctx, 320, 200))
	shot, err := p.Screenshot(ctx)
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	require.Equal(t, 320, img.Bounds().Dx())
	r, g, bl, _ := img.At(100, 100).RGBA()
	require.Equal(t, [3]uint32{0, 0xffff, 0}, [3]uint32{r, g, bl}, "the page's green background")
	require.NoError(t, p.Close(ctx))
}

// A context that ends fails the call that waits on it; a closed browser
// fails every later call with ErrClosed.
func TestCloseAndCancel(t *testing.T) {
	b := launch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := b.NewPage(ctx, "data:text/html,<p>x</p>")
	require.NoError(t, err)
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	err = p.Evaluate(short, `new Promise(() => {})`, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, b.Close())
	require.ErrorIs(t, p.Evaluate(ctx, `1`, nil), ErrClosed)
	require.NoError(t, b.Close(), "twice")
}
