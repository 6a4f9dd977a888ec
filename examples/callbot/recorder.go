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
// name, created on the first frame of each stream.
//
// Concurrency: its two sinks are written by two SDK goroutines; close is
// called once, after the call (and so its media goroutines) ended.
type voicemail struct {
	r       *recorder
	contact string

	mu       sync.Mutex
	base     string // set when admitted
	refused  bool
	charged  map[string]int64 // bytes charged per file
	audio    *audio.OggSink
	video    *video.IVFSink
	audioErr error
	videoErr error
}

func (r *recorder) voicemail(contact string) *voicemail {
	return &voicemail{r: r, contact: contact, charged: map[string]int64{}}
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

// charge takes n bytes for the file path. Caller holds v.mu.
func (v *voicemail) charge(path string, n int64) error {
	if !v.r.take(n) {
		return errBudget
	}
	v.charged[path] += n
	return nil
}

func (v *voicemail) writeAudio(f audio.Frame) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.audioErr != nil {
		return v.audioErr
	}
	v.audioErr = func() error {
		if v.audio == nil {
			if err := v.open(); err != nil {
				return err
			}
			path := v.base + ".opus"
			if err := v.charge(path, fileOverhead); err != nil {
				return err
			}
			s, err := audio.CreateOggSink(path, nil)
			if err != nil {
				return err
			}
			v.audio = s
		}
		if err := v.charge(v.base+".opus", int64(len(f.Data))+frameOverhead); err != nil {
			return err
		}
		return v.audio.WriteFrame(f)
	}()
	return v.audioErr
}

func (v *voicemail) writeVideo(f video.Frame) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.videoErr != nil {
		return v.videoErr
	}
	v.videoErr = func() error {
		if v.video == nil {
			if err := v.open(); err != nil {
				return err
			}
			path := v.base + ".ivf"
			if err := v.charge(path, fileOverhead); err != nil {
				return err
			}
			s, err := video.CreateIVFSink(path, nil)
			if err != nil {
				return err
			}
			v.video = s
		}
		if err := v.charge(v.base+".ivf", int64(len(f.Data))+frameOverhead); err != nil {
			return err
		}
		return v.video.WriteFrame(f)
	}()
	return v.videoErr
}

func (v *voicemail) audioSink() audio.Sink { return audio.SinkFunc(v.writeAudio) }
func (v *voicemail) videoSink() video.Sink { return video.SinkFunc(v.writeVideo) }

// close finishes the files, removes one that holds no frame, settles the
// byte budget with the real sizes, and returns the files kept.
func (v *voicemail) close() ([]string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var kept []string
	var errs []error
	finish := func(path string, closeErr error, empty bool) {
		errs = append(errs, closeErr)
		var size int64
		if empty {
			errs = append(errs, os.Remove(path))
		} else if info, err := os.Stat(path); err == nil {
			size = info.Size()
			kept = append(kept, path)
		}
		v.r.settle(v.charged[path], size)
	}
	if v.audio != nil {
		err := v.audio.Close()
		finish(v.base+".opus", err, false) // created on a written frame
	}
	if v.video != nil {
		err := v.video.Close()
		finish(v.base+".ivf", err, v.video.Frames() == 0) // frames before the first key frame are dropped
	}
	v.audio, v.video = nil, nil
	if v.base != "" && len(kept) == 0 {
		v.r.release() // admitted, but nothing was kept
	}
	return kept, errors.Join(errs...)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == '.' {
			return '_'
		}
		return r
	}, s)
}
