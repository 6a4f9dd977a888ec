package netsim

import "time"

// Profiles returns the networks the SDK's matrix test runs calls over, in a
// fixed order with stable names (issue 8). Every profile runs the TURN
// server, as a SimpleX client always has STUN/TURN servers configured. The
// slice is new on every call.
func Profiles() []Profile {
	return []Profile{
		{
			// No impairment, both sides on the public internet: the floor.
			Name: "clean", TURN: true,
		},
		{
			// The condition of the Chrome-vs-pion comparison in the issue
			// (answer → connected: 1.2–2.4 s pion, 0.45–1.4 s Chrome),
			// behind ordinary home routers.
			Name:  "wan-50ms-5pct",
			Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond,
			Loss: Loss{Random: 0.05},
			NATA: NATAddressPortDependent, NATB: NATAddressPortDependent, TURN: true,
		},
		{
			Name:  "wan-100ms-5pct",
			Delay: 100 * time.Millisecond, Jitter: 25 * time.Millisecond,
			Loss: Loss{Random: 0.05},
			NATA: NATAddressPortDependent, NATB: NATAddressPortDependent, TURN: true,
		},
		{
			// A satellite or congested mobile link: long delay, bursts of
			// loss (mean burst 5 packets, bad 1/21 of the time, 70 % lost in
			// it: about 3.3 % plus 0.5 % random) and a narrow uplink.
			Name:  "sat-250ms-bursty-300k",
			Delay: 250 * time.Millisecond, Jitter: 100 * time.Millisecond,
			Loss:      Loss{Random: 0.005, BurstEnter: 0.01, BurstExit: 0.2, BurstLoss: 0.7},
			Bandwidth: 300_000,
			NATA:      NATAddressPortDependent, NATB: NATAddressPortDependent, TURN: true,
		},
		{
			Name:  "loss-20pct",
			Delay: 20 * time.Millisecond,
			Loss:  Loss{Random: 0.20},
			NATA:  NATAddressPortDependent, NATB: NATAddressPortDependent, TURN: true,
		},
		{
			// Only a relay connects two symmetric NATs (RFC 4787 §4.1:
			// their server-reflexive addresses are useless to the peer).
			Name:  "symmetric-nat-turn",
			Delay: 30 * time.Millisecond, Jitter: 5 * time.Millisecond,
			NATA: NATSymmetric, NATB: NATSymmetric, TURN: true,
		},
		{
			// The user chose "always relay" (SimpleX's relay policy): run
			// with webrtc.ICETransportPolicyRelay on both sides.
			Name:  "relay-only",
			Delay: 30 * time.Millisecond, Jitter: 5 * time.Millisecond,
			NATA: NATAddressPortDependent, NATB: NATAddressPortDependent, TURN: true,
			RelayOnly: true,
		},
	}
}

// ProfileByName returns the profile of Profiles with that name.
func ProfileByName(name string) (Profile, bool) {
	for _, p := range Profiles() {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}
