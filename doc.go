// Package smpcall places and answers end-to-end encrypted 1:1 audio and
// video calls that interoperate with SimpleX Chat.
//
// A SimpleX call has three layers (protocol §1, in the notes this package
// was built from): the chat-core API (commands such as "/_call invite" and
// events such as callOffer), the chat protocol (the x.call.* messages that
// travel over the contact's SMP connection, with an X25519 key agreement),
// and WebRTC (SDP and ICE carried as LZString-compressed JSON, plus an extra
// AES-256-GCM layer on every media frame keyed by the agreed sharedKey).
//
// # Roles
//
// The party that sends the invitation is the WebRTC answerer; the invited
// party creates the SDP offer when it accepts (x.call.offer), and the caller
// replies with the answer (x.call.answer).
//
// # Entry points
//
//   - Transport is the boundary to the SimpleX side, shaped like the chat
//     core's call API. Package smp implements it three ways: smp.DialChatCore
//     talks to a running SimpleX chat core over its WebSocket API; smp.Core
//     does what the chat core does for calls over any message pipe (an
//     embedder's own SMP connection); and smp.Network is an in-memory
//     loopback of such cores for tests and examples.
//   - Client runs over a Transport: SendInvitation, SendOffer, SendAnswer,
//     SendExtraInfo, EndCall, Reject, SendCallStatus and PendingInvitations,
//     with the app-level call state machine (CallState), a bounded event
//     stream (Events) and NextInvitation to wait for the next call.
//   - PlaceCall and AcceptCall are the high-level path: they drive one pion
//     PeerConnection per call to connected (SimpleX-compatible offers and
//     answers, ICE batching, TURN and relay-only, connection status) and
//     return a *Call with its own events, whose media Sources and Sinks
//     carry plain frames while every frame on the wire is encrypted with the
//     shared key. ExampleClient_PlaceCall places and answers such a call;
//     Example drives the low-level commands by hand.
//   - The wire types (CallType, WebRTCSession, RcvCallInvitation, …) have
//     JSON identical to the chat core's.
//
// # Concurrency
//
// Client, Call and smp.Core are safe for concurrent use. A Client reads its
// Transport's events in one goroutine and never waits for the embedder:
// events go to bounded channels (Config.EventBuffer) that drop their oldest
// entries when nobody reads. Each Call has one goroutine that owns its
// negotiation and an outbox goroutine for its signaling, so a slow chat
// core never blocks End. No callback runs under a lock. Close ends calls
// in progress, stops every goroutine the Client started and waits for them;
// it may be called more than once. docs/architecture.md shows who owns what.
//
// Every timer goes through the time package, so tests can run the SDK in
// testing/synctest.
//
// # Security
//
// End-to-end encrypted: the signaling (every x.call.* message travels inside
// the SMP connection's double-ratchet encryption, which the chat core or the
// embedder's SMP stack provides, not this package) and, when both parties
// have the capability, every media frame (AES-256-GCM with the X25519
// sharedKey, which is agreed over that encrypted connection, protocol §5 and
// §7). DTLS-SRTP protects media between the two WebRTC stacks in any case.
//
// Not end-to-end encrypted: a call without a sharedKey (a peer without the
// capability, or askConfirmation), where a TURN relay that also breaks
// DTLS-SRTP could see media; RTP headers, the clear prefix of each frame (the
// VP8 frame tag and size, the Opus TOC byte), frame sizes and timing, which
// any relay sees; and the ICE candidates, which reveal the parties' IP
// addresses to each other (and to the TURN server, the relay addresses).
// Keys are never logged: SharedKey's String hides it.
package smpcall
