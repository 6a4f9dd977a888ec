// Package netsim runs WebRTC calls between two parties over a simulated
// network built on pion's vnet (github.com/pion/transport/v5/vnet): NATs of
// the RFC 4787 kinds, a TURN server (pion/turn) on the WAN, and on each
// side's uplink a configurable delay, jitter, random and bursty loss,
// reordering and bandwidth cap, driven by a seeded random generator. Only
// tests and benchmarks import it.
//
// # Topology
//
//	side A host ──uplink A──▶ [NAT A] ──┐                 ┌── [NAT B] ◀──uplink B── side B host
//	  10.1.0.2 (203.0.113.10 w/o NAT)    └── WAN 0.0.0.0/0 ┘    10.2.0.2 (198.51.100.20 w/o NAT)
//	                                              │
//	                                  TURN/STUN 192.0.2.3:3478
//
// A side gets a PeerConnection onto its host through Net.SettingEngine. The
// uplink sits between pion's sockets and the NAT: everything the side
// sends passes it once, whatever the destination; what the TURN server
// sends is not impaired. Profile documents each knob and where it applies.
//
// # Virtual time (testing/synctest)
//
// pion over vnet runs inside a synctest bubble (Go 1.25+), checked with
// pion/webrtc v4.2.26, ice v4.4.8, dtls v3.1.15, turn v5.1.3 and
// transport v5.1.4: ICE with STUN and TURN, DTLS, SRTP, the default
// interceptors (NACK, reports, TWCC) and media all work, and a 250 ms
// delay costs no wall time — a 4 s call setup plus 5 s of media runs in
// about 70 ms. Every goroutine pion starts blocks durably on channels,
// timers or sync.Cond created inside the bubble (vnet delivers packets on
// channels; no real socket is opened once SetNet is used and mDNS is off),
// and synctest.Test returning proves that closing the PeerConnections and
// the Net stops all of them. crypto/rand does not block (it is not a
// durable block, but it never waits). The rules:
//
//   - create the Net inside the bubble (New with the bubble's t), and the
//     PeerConnections too: a vnet router started outside the bubble would
//     use outside channels and timers, which do not advance virtual time;
//   - do not mix in real networking (a SettingEngine without SetNet, mDNS,
//     a real TURN server): a goroutine in a syscall is not durably blocked;
//   - close the PeerConnections before the bubble ends (cleanups run in
//     the bubble; register them after New so that they run before Close),
//     with GracefulClose: plain Close returns at once if the peer's DTLS
//     close_notify already made pion start closing in a goroutine of its
//     own, which then outlives the test (a data race with
//     testing/cryptotest's cleanup showed it).
//
// The tests of this package run that way; benchmarks cannot (synctest
// needs a *testing.T), so BenchmarkRawSetup measures in wall-clock time
// and TestRawSetupVirtual gives the virtual-time figures.
//
// # Determinism
//
// Each uplink draws from its own PCG stream seeded by New's seed, a fixed
// number of draws per packet, so the n-th packet a side sends always meets
// the same fate (lost, delay, held back) for a given seed: a single-sender
// test is exactly reproducible. A pion call is not, even in a bubble with
// testing/cryptotest.SetGlobalRandom: goroutines that send at the same
// virtual instant (ICE checks from several candidates, RTP and RTCP) are
// ordered by the Go scheduler, which synctest does not make deterministic,
// so the same losses can hit different packets; vnet also picks ports with
// the global math/rand. Twelve RawCall setups on wan-50ms-5pct with the
// same seed and SetGlobalRandom took 8 distinct times between 0.96 and
// 2.47 s (one value three times). Assert statistics and outcomes, not
// exact traces.
//
// # Concurrency
//
// Net's methods are safe for concurrent use; its sockets behave like
// kernel UDP sockets (WriteTo never blocks). RawCall may run concurrently
// on one Net. Close stops every goroutine the package started. Profile,
// Loss, Stats, LinkStats, RawOptions, RawResult and MediaCount are plain
// values.
package netsim
