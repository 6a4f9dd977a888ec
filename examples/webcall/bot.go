package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/audio"
	"github.com/smpcall/smpcall/video"
)

// bot is the Go side of the demo: a Client of the SDK on the simulated core
// that answers the browser user's calls and calls it on request, sending a
// looped tone on its microphone stream and, in video calls, a looped VP8
// clip on its camera stream, so that both directions carry real frames.
//
// Concurrency: answer, place and stats may be called from any goroutine;
// run owns the event loop; close ends the call and waits.
type bot struct {
	client *smpcall.Client
	peer   smpcall.Contact // the browser user, as the bot's contact
	greet  []byte          // Ogg Opus
	clip   []byte          // IVF VP8
	log    *slog.Logger
	udpMux string // the address of Config.UDPMux, if any

	mu    sync.Mutex
	cur   *botCall // the call in progress or the last one
	calls int
	wg    sync.WaitGroup
}

// botCall is what the bot keeps about one call.
type botCall struct {
	call     *smpcall.Call
	incoming bool
	media    smpcall.CallMediaType
	started  time.Time

	mu      sync.Mutex
	setup   time.Duration // 0 until connected
	failing map[smpcall.CallMediaSource]int
}

// ---- Event handling: the one place that reads the SDK's events. ----------
//
// Invitations come from Client.NextInvitation; each call's own events come
// from its Call.Events channel, read in watch below.

func (b *bot) run(ctx context.Context) {
	for {
		inv, err := b.client.NextInvitation(ctx)
		if err != nil {
			return // ctx ended or the client closed
		}
		if inv.Contact.ContactID != b.peer.ContactID {
			continue
		}
		if err := b.answer(ctx, inv); err != nil {
			b.log.Warn("bot: answering", "err", err)
		}
	}
}

// handleCallEvent handles one event of the bot's call k.
func (b *bot) handleCallEvent(k *botCall, ev smpcall.Event) {
	switch e := ev.(type) {
	case *smpcall.CallConnectedEvent:
		k.mu.Lock()
		k.setup = time.Since(k.started)
		k.mu.Unlock()
		b.log.Info("bot: call connected", "path", e.Info.String(), "encrypted", e.Encrypted, "setup", k.setup.Round(time.Millisecond), "incoming", k.incoming)
	case *smpcall.DecryptFailingEvent:
		b.log.Warn("bot: frames fail to decrypt", "source", e.Source, "consecutive", e.Failed)
		k.mu.Lock()
		k.failing[e.Source] = e.Failed
		k.mu.Unlock()
	case *smpcall.MediaErrorEvent:
		b.log.Warn("bot: media", "source", e.Source, "sending", e.Sending, "err", e.Err)
	case *smpcall.CallRecordEvent:
		b.log.Info("bot: call record", "record", e.Record.Text(), "reason", e.Record.Reason, "encrypted", e.Record.Encrypted)
	}
}

// ---- end of event handling ------------------------------------------------

func (b *bot) current() *botCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}

// sources opens the bot's media for a call: the tone always, the clip in
// video calls. Both loop and are paced in real time.
func (b *bot) sources(media smpcall.CallMediaType) (smpcall.Sources, []io.Closer, error) {
	var s smpcall.Sources
	mic, err := audio.NewOggSource(bytes.NewReader(b.greet), &audio.OggSourceOptions{Paced: true, Loop: true})
	if err != nil {
		return s, nil, fmt.Errorf("audio: %w", err)
	}
	s.Mic = mic
	closers := []io.Closer{mic}
	if media == smpcall.MediaVideo {
		cam, err := video.NewIVFSource(bytes.NewReader(b.clip), &video.IVFSourceOptions{Paced: true, Loop: true})
		if err != nil {
			mic.Close()
			return s, nil, fmt.Errorf("video: %w", err)
		}
		s.Camera = cam
		closers = append(closers, cam)
	}
	return s, closers, nil
}

// answer accepts the browser user's invitation: the SDK makes the offer.
func (b *bot) answer(ctx context.Context, inv smpcall.RcvCallInvitation) error {
	b.log.Info("bot: answering", "media", inv.CallType.Media, "encrypted", inv.SharedKey != nil)
	return b.start(true, inv.CallType.Media, func(src smpcall.Sources) (*smpcall.Call, error) {
		return b.client.AcceptCall(ctx, inv.Contact.ContactID, &smpcall.CallOptions{Sources: src})
	})
}

// place calls the browser user: the page will make the offer.
func (b *bot) place(ctx context.Context, media smpcall.CallMediaType) error {
	if k := b.current(); k != nil && k.call.State() != smpcall.StateEnded {
		if k.incoming || k.call.State() != smpcall.StateInvitationSent {
			return errors.New("the bot is in a call")
		}
		// Still ringing (a rejected call rings on, protocol §4.4): call anew.
		if err := k.call.End(ctx); err != nil {
			return err
		}
	}
	b.log.Info("bot: calling", "media", media)
	return b.start(false, media, func(src smpcall.Sources) (*smpcall.Call, error) {
		return b.client.PlaceCall(ctx, b.peer.ContactID, &smpcall.CallOptions{Media: media, Sources: src})
	})
}

func (b *bot) start(incoming bool, media smpcall.CallMediaType, open func(smpcall.Sources) (*smpcall.Call, error)) error {
	src, closers, err := b.sources(media)
	if err != nil {
		return err
	}
	started := time.Now()
	call, err := open(src)
	if err != nil {
		for _, c := range closers {
			c.Close()
		}
		return err
	}
	k := &botCall{call: call, incoming: incoming, media: media, started: started, failing: map[smpcall.CallMediaSource]int{}}
	b.mu.Lock()
	b.cur = k
	b.calls++
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.watch(k, closers)
	}()
	return nil
}

// watch follows one call to its end: its events (setup time, decrypt
// failures), then it closes the media sources. A call the bot places stops
// ringing after the SDK's ring timeout (Config.RingTimeout, one minute).
func (b *bot) watch(k *botCall, closers []io.Closer) {
	for ev := range k.call.Events() {
		b.handleCallEvent(k, ev)
	}
	<-k.call.Done()
	for _, c := range closers {
		c.Close()
	}
	reason, err := k.call.Reason()
	b.log.Info("bot: call over", "reason", reason, "err", err)
}

// hangup ends the bot's call, if any.
func (b *bot) hangup(ctx context.Context) error {
	k := b.current()
	if k == nil {
		return errors.New("no call")
	}
	return k.call.End(ctx)
}

// close ends the bot's calls (sending x.call.end) and waits for them.
func (b *bot) close() {
	b.client.Close()
	b.wg.Wait()
}

// botStats is what /bot/stats serves: the bot's side of the current (or
// last) call.
type botStats struct {
	Calls     int    `json:"calls"`
	State     string `json:"state"`
	Incoming  bool   `json:"incoming"`
	Media     string `json:"media,omitempty"`
	Encrypted bool   `json:"encrypted"`
	// SetupMs is from accepting (or placing) to connected.
	SetupMs float64 `json:"setupMs,omitempty"`
	Path    string  `json:"path,omitempty"`
	Relay   bool    `json:"relay"`
	Reason  string  `json:"reason,omitempty"`
	// UDPMux is the one UDP address of all the bot's calls (-udp-mux).
	UDPMux string `json:"udpMux,omitempty"`
	// DecryptFailing lists the sources that raised a DecryptFailingEvent,
	// with the consecutive failures it reported.
	DecryptFailing map[string]int `json:"decryptFailing"`
	Streams        []streamStats  `json:"streams"`
}

type streamStats struct {
	Source         string `json:"source"`
	FramesSent     uint64 `json:"framesSent"`
	FramesReceived uint64 `json:"framesReceived"`
	Decrypted      uint64 `json:"decrypted"`
	DecryptFailed  uint64 `json:"decryptFailed"`
	KeyFrames      uint64 `json:"keyFramesReceived"`
}

func (b *bot) stats() botStats {
	b.mu.Lock()
	k, n := b.cur, b.calls
	b.mu.Unlock()
	s := botStats{Calls: n, State: "idle", UDPMux: b.udpMux, DecryptFailing: map[string]int{}, Streams: []streamStats{}}
	if k == nil {
		return s
	}
	st := k.call.Stats()
	s.State = k.call.State().String()
	s.Incoming = k.incoming
	s.Media = string(k.media)
	s.Encrypted = k.call.Encrypted()
	s.Path = st.Info.String()
	s.Relay = st.Info.Relay
	if st.Info.LocalType == "" {
		s.Path = ""
	}
	if r, _ := k.call.Reason(); r != smpcall.ReasonNone {
		s.Reason = r.String()
	}
	k.mu.Lock()
	s.SetupMs = float64(k.setup.Microseconds()) / 1000
	for src, n := range k.failing {
		s.DecryptFailing[string(src)] = n
	}
	k.mu.Unlock()
	for _, x := range st.Streams {
		s.Streams = append(s.Streams, streamStats{Source: string(x.Source), FramesSent: x.FramesSent, FramesReceived: x.FramesReceived,
			Decrypted: x.Decrypted, DecryptFailed: x.DecryptFailed, KeyFrames: x.KeyFramesReceived})
	}
	return s
}
