package smpcall_test

// Security tests of a call (RELIABILITY.md, "Security"): frames tampered
// with or sealed under another key are dropped and counted and never reach
// a sink, and the SDK's copies of the media key are zeroed when the call
// ends. The frame layer's own tests (100,000 tampered frames, IV
// uniqueness over a million frames) are in internal/framecrypt; replayed
// and stale x.call.* messages are in hostile_test.go.

import (
	"bytes"
	"crypto/rand"
	mrand "math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/internal/netsim"
	"github.com/smpcall/smpcall/internal/rtcpayload"
	"github.com/smpcall/smpcall/smp"
)

// rawCallee is a plain pion peer answering an SDK caller's invitation
// through its own smp.Core (the low-level commands), so that a test
// decides every byte of every frame it sends: a peer that has the key and
// sends what it likes, or a path that changes frames (which takes breaking
// DTLS-SRTP, SECURITY.md).
type rawCallee struct {
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticSample
	key   smpcall.SharedKey
}

// answerRaw lets bob's core answer alice's ringing invitation with a raw
// pion peer on side B of sim (one audio m-line, as an older SimpleX client
// offers, protocol §6.4), and returns once the pion connection is up.
func answerRaw(t *testing.T, sim *netsim.Net, bobCore *smp.Core, aliceID int64) *rawCallee {
	t.Helper()
	var inv *smpcall.CallInvitationEvent
	for inv == nil {
		select {
		case ev := <-bobCore.Events():
			inv, _ = ev.(*smpcall.CallInvitationEvent)
		case <-time.After(time.Minute):
			t.Fatal("no invitation")
		}
	}
	require.NotNil(t, inv.Invitation.SharedKey)
	m := &webrtc.MediaEngine{}
	require.NoError(t, m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio))
	ir := &interceptor.Registry{}
	require.NoError(t, webrtc.RegisterDefaultInterceptors(m, ir))
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(*sim.SettingEngine(netsim.B)))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "raw")
	require.NoError(t, err)
	_, err = pc.AddTrack(track)
	require.NoError(t, err)
	connected := make(chan struct{})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			close(connected)
		}
	})
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered
	session, err := rtcpayload.EncodeSession(rtcpayload.Session{Type: "offer", SDP: pc.LocalDescription().SDP})
	require.NoError(t, err)
	noCands, err := rtcpayload.EncodeCandidates(nil)
	require.NoError(t, err)
	require.NoError(t, bobCore.Offer(ctx, aliceID, smpcall.WebRTCCallOffer{
		CallType:   smpcall.CallType{Media: smpcall.MediaAudio, Capabilities: smpcall.CallCapabilities{Encryption: true}},
		RTCSession: smpcall.WebRTCSession{RTCSession: session, RTCIceCandidates: noCands},
	}))
	addCands := func(s string) {
		cs, _ := rtcpayload.DecodeCandidates(s)
		for _, c := range cs {
			_ = pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex})
		}
	}
	for {
		select {
		case ev := <-bobCore.Events():
			switch ev := ev.(type) {
			case *smpcall.CallAnswerEvent:
				sess, err := rtcpayload.DecodeSession(ev.Answer.RTCSession)
				require.NoError(t, err)
				require.NoError(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sess.SDP}))
				addCands(ev.Answer.RTCIceCandidates)
			case *smpcall.CallExtraInfoEvent:
				addCands(ev.ExtraInfo.RTCIceCandidates)
			}
		case <-connected:
			return &rawCallee{pc: pc, track: track, key: *inv.Invitation.SharedKey}
		case <-time.After(time.Minute):
			t.Fatal("the raw peer did not connect")
		}
	}
}

// TestTamperedFramesAreDroppedAndCounted: a peer sends 2,000 audio frames
// sealed with the call's key; a random 30 % are changed after their clear
// prefix, 10 % only in it, and 50 intact ones are sent twice. Every frame
// changed after the prefix is dropped and counted (DecryptFailed) and never
// reaches the sink; the intact ones arrive byte for byte. Two properties
// of the SimpleX format show too (SECURITY.md): a change to the clear
// prefix alone is not detected (no AAD, protocol §7.1), and a frame sent
// again is delivered again (the frame layer has no replay protection; SRTP
// protects the packets). With another key, nothing is delivered.
func TestTamperedFramesAreDroppedAndCounted(t *testing.T) {
	for _, wrongKey := range []bool{false, true} {
		name := "the call's key"
		if wrongKey {
			name = "another key"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim, err := netsim.New(t, lanProfile, 5)
				require.NoError(t, err)
				net := smp.NewNetwork(nil)
				t.Cleanup(func() { require.NoError(t, net.Close()) })
				aliceCore, _ := net.AddUser("alice", nil)
				bobCore, _ := net.AddUser("bob", nil)
				bobID, aliceID, err := net.Connect("alice", "bob")
				require.NoError(t, err)
				alice, err := smpcall.NewClient(aliceCore, &smpcall.Config{SettingEngine: sim.SettingEngine(netsim.A), ICEServers: []smpcall.ICEServer{}})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, alice.Close()) })
				var got collector
				ac, err := alice.PlaceCall(ctx, bobID, &smpcall.CallOptions{Media: smpcall.MediaAudio, Sinks: smpcall.Sinks{Mic: got.Audio()}})
				require.NoError(t, err)
				raw := answerRaw(t, sim, bobCore, aliceID)
				_, err = ac.WaitConnected(ctxWithin(t, time.Minute))
				require.NoError(t, err)
				require.True(t, ac.Encrypted())

				key := raw.key
				if wrongKey {
					rand.Read(key[:])
				}
				ci, err := framecrypt.New(key[:])
				require.NoError(t, err)
				rng := mrand.New(mrand.NewPCG(7, 7))
				const n = 2000
				sent := map[int][]byte{}
				var intact, body, prefix, again int
				send := func(data []byte) {
					require.NoError(t, raw.track.WriteSample(media.Sample{Data: data, Duration: 20 * time.Millisecond}))
					time.Sleep(20 * time.Millisecond)
				}
				var replay [][]byte
				for i := range n {
					f := make([]byte, 3+rng.IntN(200))
					rand.Read(f)
					f[0], f[1], f[2] = 0x78, byte(i>>8), byte(i)
					sealed := ci.Seal(nil, f, framecrypt.PrefixAudio)
					switch x := rng.IntN(10); {
					case x < 3: // after the clear prefix: ciphertext, tag or IV
						p := 1 + rng.IntN(len(sealed)-1)
						sealed[p] ^= 1 << rng.IntN(8)
						body++
					case x < 4: // the Opus TOC byte, in clear
						sealed[0] ^= 0x04
						f[0] ^= 0x04
						sent[i] = f
						prefix++
					default:
						sent[i] = f
						intact++
						if len(replay) < 50 && rng.IntN(20) == 0 {
							replay = append(replay, sealed)
						}
					}
					send(sealed)
				}
				for _, s := range replay {
					send(s)
					again++
				}
				time.Sleep(time.Second)

				st := ac.Stats().Streams[0]
				require.Equal(t, smpcall.SourceMic, st.Source)
				frames := got.got()
				t.Logf("%d frames sent (%d intact, %d changed after the prefix, %d changed in the prefix, %d sent again): %d decrypted, %d failed, %d delivered",
					n+again, intact, body, prefix, again, st.Decrypted, st.DecryptFailed, len(frames))
				if wrongKey {
					require.Equal(t, uint64(n+again), st.DecryptFailed, "every frame failed and was counted")
					require.Zero(t, st.Decrypted)
					require.Empty(t, frames, "nothing reached the sink")
					waitCall[*smpcall.DecryptFailingEvent](t, ac)
				} else {
					require.Equal(t, uint64(body), st.DecryptFailed, "every frame changed after its prefix failed and was counted")
					require.Equal(t, uint64(intact+prefix+again), st.Decrypted)
					require.Len(t, frames, intact+prefix+again)
					seen := map[int]int{}
					for _, f := range frames {
						i := int(f[1])<<8 | int(f[2])
						want, ok := sent[i]
						require.True(t, ok, "frame %d was tampered with after its prefix, yet it was delivered", i)
						require.True(t, bytes.Equal(want, f), "frame %d", i)
						seen[i]++
					}
					require.Len(t, seen, intact+prefix)
				}
				require.NoError(t, ac.End(ctx))
			})
		})
	}
}

// TestKeyMaterialWipedWhenTheCallEnds: the copies of the media key the SDK
// keeps (the Client's, for each call, and an incoming Call's own, from the
// invitation) are zeroed in place when the call ends, whichever way it
// ends. (The embedder's copies, e.g. from CallInfo or an invitation, are
// the embedder's; Go's crypto/aes keeps the expanded key in memory that Go
// cannot overwrite, see framecrypt.Cipher.Destroy.)
func TestKeyMaterialWipedWhenTheCallEnds(t *testing.T) {
	for _, how := range []string{"caller hangs up", "callee hangs up", "client closed", "connection lost"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lp := startPair(t, pairOptions{media: smpcall.MediaAudio, mod: func(_ netsim.Side, c *smpcall.Config) {
					c.ReconnectBudget = smpcall.Never
				}})
				info, ok := lp.clients[0].CallInfo(lp.peer[0])
				require.True(t, ok)
				key := *info.SharedKey
				refs := map[string]*smpcall.SharedKey{
					"alice's Client": smpcall.EntryKeyRef(lp.clients[0], lp.peer[0]),
					"bob's Client":   smpcall.EntryKeyRef(lp.clients[1], lp.peer[1]),
					"bob's Call":     smpcall.CallKeyRef(lp.bob),
				}
				for who, r := range refs {
					require.NotNil(t, r, who)
					require.True(t, key == *r, "%s holds the call's key", who)
				}
				switch how {
				case "caller hangs up":
					require.NoError(t, lp.alice.End(ctx))
				case "callee hangs up":
					require.NoError(t, lp.bob.End(ctx))
				case "client closed":
					require.NoError(t, lp.clients[1].Close())
				case "connection lost":
					lp.sim.SetLinkUp(netsim.A, false)
				}
				for _, k := range []*smpcall.Call{lp.alice, lp.bob} {
					select {
					case <-k.Done():
					case <-time.After(2 * time.Minute):
						t.Fatal("the call did not end")
					}
				}
				for who, r := range refs {
					require.True(t, *r == smpcall.SharedKey{}, "%s's copy of the key is zeroed", who)
				}
				require.True(t, smpcall.CallKeyWiped(lp.alice))
				require.True(t, smpcall.CallKeyWiped(lp.bob))
				require.True(t, smpcall.EntryKeyWiped(lp.clients[0], lp.peer[0]))
				require.True(t, *info.SharedKey == key, "the embedder's copy is the embedder's")
			})
		})
	}
}
