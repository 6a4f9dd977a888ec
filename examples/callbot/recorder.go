package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/video"
)

// errBudget stops a recording stream: the folder holds as many recordings
// or bytes as the flags allow. The SDK then stops delivering that stream to
// its sink (a MediaErrorEvent); the call itself goes on.
var errBudget = errors.New("recording budget reached (-max-recordings / -max-bytes)")

// Size estimates charged to the budget before writing; close settles them
// against the real file sizes. An Ogg page header is 27 bytes plus its
// lacing values, an IVF frame header 12; the file headers are under 200.
const (
	fileOverhead  = 256
	frameOverhead = 64
)

// recorder keeps the bot's recordings within bounds (issue 11): a call's
// files are created only when the caller's first frame arrives, so calls
// that never connect leave nothing behind, and the folder holds at most
// maxRecordings recordings (one per call, its .opus and .ivf together) and
// maxBytes bytes, counting what was there at start. A negative bound is no
// bound.
//
// Concurrency: safe for concurrent use; every call's sinks share it.
type recorder struct {
	dir           string
	maxRecordings int
	maxBytes      int64
	log           *slog.Logger

	mu         sync.Mutex
	recordings int
	bytes      int64
	warned     bool
}

func newRecorder(dir string, maxRecordings int, maxBytes int64, log *slog.Logger) (*recorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	r := &recorder{dir: dir, maxRecordings: maxRecordings, maxBytes: maxBytes, log: log}
	bases := map[string]bool{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".opus" && ext != ".ivf") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		bases[strings.TrimSuffix(e.Name(), ext)] = true
		r.bytes += info.Size()
	}
	r.recordings = len(bases)
	log.Info("recordings", "dir", dir, "existing", r.recordings, "bytes", r.bytes, "maxRecordings", maxRecordings, "maxBytes", maxBytes)
	return r, nil
}

// admit gives a call a recording slot, or refuses it.
func (r *recorder) admit() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxRecordings >= 0 && r.recordings >= r.maxRecordings {
		r.full()
		return false
	}
	r.recordings++
	return true
}

// take charges n bytes, or refuses them.
func (r *recorder) take(n int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxBytes >= 0 && r.bytes+n > r.maxBytes {
		r.full()
		return false
	}
	r.bytes += n
	return true
}

// release gives back a slot that ended up with no file.
func (r *recorder) release() {
	r.mu.Lock()
	r.recordings--
	r.mu.Unlock()
}

// settle replaces an estimate by the real size.
func (r *recorder) settle(charged, real int64) {
	r.mu.Lock()
	r.bytes += real - charged
	r.mu.Unlock()
}

// full logs, once per run, that recordings stop. Caller holds r.mu.
func (r *recorder) full() {
	if !r.warned {
		r.warned = true
		r.log.Warn("recording budget reached; new voicemail is not recorded", "recordings", r.recordings, "bytes", r.bytes)
	}
}

// voicemail is the recording of one call: up to two files with one base
// name, each created on the first frame of its stream.
//
// Concurrency: its two sinks are written by two SDK goroutines; close is
// called once, after the call (and so its media goroutines) ended.
type voicemail struct {
	r       *recorder
	contact string

	mu      sync.Mutex
	base    string // set when admitted
	refused bool
	audio   file[audio.Frame]
	video   file[video.Frame]
}

// file is one file of a voicemail.
type file[F any] struct {
	ext     string
	create  func(path string) (frameWriter[F], error)
	out     frameWriter[F] // nil until the first frame
	err     error          // once set, every later frame gets it
	charged int64          // bytes charged to the budget
}

type frameWriter[F any] interface {
	WriteFrame(F) error
	Close() error
}

func (r *recorder) voicemail(contact string) *voicemail {
	v := &voicemail{r: r, contact: contact}
	v.audio = file[audio.Frame]{ext: ".opus", create: func(p string) (frameWriter[audio.Frame], error) { return audio.CreateOggSink(p, nil) }}
	v.video = file[video.Frame]{ext: ".ivf", create: func(p string) (frameWriter[video.Frame], error) { return video.CreateIVFSink(p, nil) }}
	return v
}

// open admits the call on its first frame and names its files by contact
// and the time of that frame. Caller holds v.mu.
func (v *voicemail) open() error {
	if v.refused {
		return errBudget
	}
	if v.base != "" {
		return nil
	}
	if !v.r.admit() {
		v.refused = true
		return errBudget
	}
	v.base = filepath.Join(v.r.dir, fmt.Sprintf("%s-%s", safeName(v.contact), time.Now().UTC().Format("20060102-150405.000")))
	return nil
}

// write charges the frame of size n to the budget and writes it, creating
// the file on the first frame. Caller holds v.mu.
func write[F any](v *voicemail, f *file[F], frame F, n int) error {
	if f.err != nil {
		return f.err
	}
	f.err = func() error {
		if f.out == nil {
			if err := v.open(); err != nil {
				return err
			}
			if !v.r.take(fileOverhead) {
				return errBudget
			}
			f.charged += fileOverhead
			out, err := f.create(v.base + f.ext)
			if err != nil {
				return err
			}
			f.out = out
		}
		if !v.r.take(int64(n) + frameOverhead) {
			return errBudget
		}
		f.charged += int64(n) + frameOverhead
		return f.out.WriteFrame(frame)
	}()
	return f.err
}

func (v *voicemail) audioSink() audio.Sink {
	return audio.SinkFunc(func(fr audio.Frame) error {
		v.mu.Lock()
		defer v.mu.Unlock()
		return write(v, &v.audio, fr, len(fr.Data))
	})
}

func (v *voicemail) videoSink() video.Sink {
	return video.SinkFunc(func(fr video.Frame) error {
		v.mu.Lock()
		defer v.mu.Unlock()
		return write(v, &v.video, fr, len(fr.Data))
	})
}

// finish closes the file, removes it if it holds no frame (an IVF sink
// drops the frames before the first key frame), settles the byte budget
// with its real size, and says whether it was kept. Caller holds v.mu.
func finish[F any](v *voicemail, f *file[F]) (string, bool, error) {
	if f.out == nil {
		v.r.settle(f.charged, 0)
		return "", false, nil
	}
	path := v.base + f.ext
	err := f.out.Close()
	var size int64
	kept := false
	if c, ok := f.out.(interface{ Frames() int }); ok && c.Frames() == 0 {
		err = errors.Join(err, os.Remove(path))
	} else if info, serr := os.Stat(path); serr == nil {
		size, kept = info.Size(), true
	}
	v.r.settle(f.charged, size)
	f.out, f.charged = nil, 0
	return path, kept, err
}

// close finishes both files and returns those kept.
func (v *voicemail) close() ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var kept []string
	pa, ka, errA := finish(v, &v.audio)
	pv, kv, errV := finish(v, &v.video)
	if ka {
		kept = append(kept, pa)
	}
	if kv {
		kept = append(kept, pv)
	}
	if v.base != "" && len(kept) == 0 {
		v.r.release() // admitted, but nothing was kept
	}
	return kept, errors.Join(errA, errV)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == '.' {
			return '_'
		}
		return r
	}, s)
}
