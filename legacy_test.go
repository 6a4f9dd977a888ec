package smpcall_test

import (
	"context"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/framecrypt"
	"github.com/smpcall/smpcall/internal/rtcpayload"
)

// rawPeer is a plain pion peer connection standing in for an older SimpleX
// client that creates only the m-lines it uses (protocol §6.4).
func rawPeer(t *testing.T) *webrtc.PeerConnection {
	m := &webrtc.MediaEngine{}
	require.NoError(t, m.RegisterDefaultCodecs())
	ir := &interceptor.Registry{}
	require.NoError(t, webrtc.RegisterDefaultInterceptors(m, ir))
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(*loopbackSettings()))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// The answering side (the caller) completes a call whose offer has the
// legacy 1- or 2-m-line layout, answers each m-line sendrecv, and its
// encrypted frames decrypt on the old client's side.
func TestAnswerLegacyOffers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		media smpcall.CallMediaType
		kinds []webrtc.RTPCodecType
	}{
		{"audio call, one m-line", smpcall.MediaAudio, []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio}},
		{"video call, two m-lines", smpcall.MediaVideo, []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice, bob, _ := newRTCPair(t, rtcConfig(nil), rtcConfig(nil), nil)
			sent := frames(30, 64, false)
			ac, err := alice.client.PlaceCall(ctx, alice.peerID, &smpcall.CallOptions{
				Media:   tc.media,
				Sources: smpcall.Sources{Mic: &audioList{listSource{frames: sent, every: 5 * time.Millisecond}}},
			})
			require.NoError(t, err)
			ring := wait[*smpcall.RingingEvent](t, bob.client)
			require.NotNil(t, ring.Invitation.SharedKey)
			key := *ring.Invitation.SharedKey

			// Bob's old client: only the m-lines it uses, no mids 2/3.
			pc := rawPeer(t)
			for _, kind := range tc.kinds {
				mime := webrtc.MimeTypeOpus
				if kind == webrtc.RTPCodecTypeVideo {
					mime = webrtc.MimeTypeVP8
				}
				tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: mime}, kind.String(), "old")
				require.NoError(t, err)
				_, err = pc.AddTrack(tr)
				require.NoError(t, err)
			}
			got := make(chan []byte, 64)
			pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				for {
					p, _, err := tr.ReadRTP()
					if err != nil {
						return
					}
					if tr.Kind() == webrtc.RTPCodecTypeAudio && len(p.Payload) > 0 {
						select {
						case got <- append([]byte(nil), p.Payload...):
						default:
						}
					}
				}
			})
			offer, err := pc.CreateOffer(nil)
			require.NoError(t, err)
			gathered := webrtc.GatheringCompletePromise(pc)
			require.NoError(t, pc.SetLocalDescription(offer))
			<-gathered
			rtcSession, err := rtcpayload.EncodeSession(rtcpayload.Session{Type: "offer", SDP: pc.LocalDescription().SDP})
			require.NoError(t, err)
			noCands, err := rtcpayload.EncodeCandidates(nil)
			require.NoError(t, err)
			require.NoError(t, bob.client.SendOffer(ctx, bob.peerID, smpcall.WebRTCCallOffer{
				CallType:   smpcall.CallType{Media: tc.media, Capabilities: smpcall.CallCapabilities{Encryption: true}},
				RTCSession: smpcall.WebRTCSession{RTCSession: rtcSession, RTCIceCandidates: noCands},
			}))

			answer := wait[*smpcall.CallAnswerEvent](t, bob.client)
			asdp := decodeSDP(t, answer.Answer.RTCSession)
			require.Len(t, mlines(asdp), len(tc.kinds), "answer has exactly the offered m-lines")
			require.Equal(t, len(tc.kinds), countLines(asdp, "a=sendrecv"))
			require.NoError(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: asdp}))
			cands, err := rtcpayload.DecodeCandidates(answer.Answer.RTCIceCandidates)
			require.NoError(t, err)
			for _, c := range cands {
				require.NoError(t, pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex}))
			}
			go func() { // later candidates, if any
				for {
					select {
					case ev, ok := <-bob.client.Events():
						if !ok {
							return
						}
						if x, ok := ev.(*smpcall.CallExtraInfoEvent); ok {
							cs, _ := rtcpayload.DecodeCandidates(x.ExtraInfo.RTCIceCandidates)
							for _, c := range cs {
								_ = pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex})
							}
						}
					case <-time.After(15 * time.Second):
						return
					}
				}
			}()

			wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err = ac.WaitConnected(wctx)
			require.NoError(t, err)
			require.True(t, ac.Encrypted())
			// An old client has no screen m-lines (protocol §6.4).
			require.ErrorIs(t, ac.StartScreenShare(endlessVideo{&endless{vid: true, every: time.Second}}, nil), smpcall.ErrNoSuchStream)
			if tc.media == smpcall.MediaAudio {
				require.ErrorIs(t, ac.SetVideoSource(smpcall.SourceCamera, nil), smpcall.ErrNoSuchStream)
			}

			// The old client decrypts what Alice sends with the same key.
			ci, err := framecrypt.New(key[:])
			require.NoError(t, err)
			select {
			case enc := <-got:
				plain, err := ci.Open(nil, enc, framecrypt.PrefixAudio)
				require.NoError(t, err)
				i := int(plain[1])<<8 | int(plain[2])
				require.Equal(t, sent[i], plain)
				require.NotEqual(t, sent[i], enc, "frames are encrypted on the wire")
			case <-wctx.Done():
				t.Fatal("no audio reached the old client")
			}
			require.NoError(t, ac.End(ctx))
		})
	}
}
