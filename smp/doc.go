// Package smp is the SimpleX side of the SDK: everything between a
// smpcall.Client and the contact's SMP connection.
//
//   - Core does for one chat user what the SimpleX chat core does for calls
//     (protocol §3–§5, §9): the x.call.* chat messages byte for byte
//     (Message, DecodeMessage), X25519 key agreement (DHPublicKey), the
//     core's per-contact call states and their errors, message errors and
//     call items. It runs over any Pipe that carries whole chat messages, so
//     an embedder with its own SMP stack can use it; it implements
//     smpcall.Transport.
//   - Network is an in-memory SMP network of Cores joined by loopback pipes,
//     with seeded faults per direction (drop, duplicate, delay, reorder, an
//     offline peer), for tests and examples.
//   - ChatClient implements smpcall.Transport over a running chat core's
//     WebSocket API (`simplex-chat -p 5225`, protocol §8): one user's calls,
//     filtered from the core's events of all users, reconnecting by itself.
//     ChatServer serves that API for one or more Cores as the users of one
//     simulated core, as strictly as the real one (Either-wrapped replies,
//     each event to one client, events queued while none is connected,
//     invitations for the active user only), so the loopback can stand in
//     for a real core; the codec between them (commands, frames, responses,
//     events) is in api.go, the notes behind it in docs/chat-core-json.md.
//
// Call versions (protocol §5.4: version 2 derives the media key with HKDF)
// are implemented in Core behind CoreConfig.CallVersion2, off by default
// until released SimpleX apps use them.
//
// ExampleNetwork shows two users of the loopback exchanging a call's
// messages; the root package's examples run whole calls over it.
//
// smp imports the root package for its types; the root never imports smp.
package smp
