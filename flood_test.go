package smpcall_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/smp"
)

// coreDouble is a chat core at the Transport boundary: its events are
// decoded from the chat-core JSON a real core sends (smp.DecodeEvent), and
// its commands succeed without doing anything but being counted.
type coreDouble struct {
	ch       chan smpcall.Event
	mu       sync.Mutex
	rejected []int64
}

func newCoreDouble() *coreDouble { return &coreDouble{ch: make(chan smpcall.Event)} }

func (d *coreDouble) Invite(context.Context, int64, smpcall.CallType) error       { return nil }
func (d *coreDouble) Offer(context.Context, int64, smpcall.WebRTCCallOffer) error { return nil }
func (d *coreDouble) Answer(context.Context, int64, smpcall.WebRTCSession) error  { return nil }
func (d *coreDouble) Extra(context.Context, int64, smpcall.WebRTCExtraInfo) error { return nil }
func (d *coreDouble) End(context.Context, int64) error                            { return nil }
func (d *coreDouble) Status(context.Context, int64, smpcall.WebRTCCallStatus) error {
	return nil
}
func (d *coreDouble) Invitations(context.Context) ([]smpcall.RcvCallInvitation, error) {
	return nil, nil
}
func (d *coreDouble) Events() <-chan smpcall.Event { return d.ch }
func (d *coreDouble) Close() error                 { return nil }

func (d *coreDouble) Reject(_ context.Context, id int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rejected = append(d.rejected, id)
	return nil
}

// send decodes one chat-core event and hands it to the Client.
func (d *coreDouble) send(t *testing.T, resp string) {
	t.Helper()
	evs, err := smp.DecodeEvent(json.RawMessage(resp))
	require.NoError(t, err)
	for _, ev := range evs {
		d.ch <- ev
	}
}

// contactJSON is a contact as the core sends it, with a 2 KB full name.
func contactJSON(id int) string {
	return fmt.Sprintf(`{"contactId":%d,"localDisplayName":"c%d","profile":{"displayName":"c%d","fullName":"%s"}}`,
		id, id, id, strings.Repeat("n", 2048))
}

func invitationJSON(id int, ts time.Time) string {
	return fmt.Sprintf(`{"type":"callInvitation","callInvitation":{"user":{"userId":1},"contact":%s,`+
		`"callType":{"media":"audio","capabilities":{"encryption":true}},"sharedKey":"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=",`+
		`"callUUID":"6d1f2a0c-6f8e-4c6b-9d0e-%012d","callTs":"%s"}}`, contactJSON(id), id, ts.UTC().Format(time.RFC3339Nano))
}

func offerJSON(id int) string {
	return fmt.Sprintf(`{"type":"callOffer","user":{"userId":1},"contact":%s,"callType":{"media":"video","capabilities":{"encryption":true}},`+
		`"offer":{"rtcSession":"N4IgLgng","rtcIceCandidates":"NobwRAxg"},"sharedKey":"Sl2dW6TOLeFyjjv0gDUPJeB-IclH0Z4zdvCbPB4WF0I=","askConfirmation":false}`, contactJSON(id))
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// A chat core that sends invitations from 10,000 contacts, which nobody
// reads or answers: at most 1,024 wait (the rest are refused, logged and
// counted in DroppedEvents), memory stays bounded, and answering one makes
// room for the next.
func TestHostileCoreInvitationFlood(t *testing.T) {
	core := newCoreDouble()
	c, err := smpcall.NewClient(core, nil)
	require.NoError(t, err)
	defer c.Close()
	const flood, waiting = 10000, 1024
	before := liveHeap()
	now := time.Now()
	for id := 1; id <= flood; id++ {
		core.send(t, invitationJSON(id, now))
	}
	// The Client reads its transport's events one at a time: once it has
	// taken this one, it has handled the whole flood (otherwise the last
	// invitation could take the room that declining one makes below).
	core.send(t, `{"type":"callEnded","user":{"userId":1},"contact":{"contactId":99999}}`)
	require.Equal(t, smpcall.StateInvitationReceived, c.CallState(1))

	// Answering one (here: declining) makes room for the next.
	require.NoError(t, c.Reject(context.Background(), 1))
	core.send(t, invitationJSON(flood+1, time.Now()))
	if !assert.Eventually(t, func() bool { return c.CallState(flood+1) == smpcall.StateInvitationReceived }, waitTime, time.Millisecond) {
		waitingNow := 0
		for id := int64(1); id <= flood+1; id++ {
			if c.CallState(id) == smpcall.StateInvitationReceived {
				waitingNow++
			}
		}
		t.Fatalf("the next invitation did not get the room: contact 1 %s, contact %d %s, %d waiting, %d dropped",
			c.CallState(1), flood+1, c.CallState(flood+1), waitingNow, c.DroppedEvents())
	}

	grown := liveHeap() - before
	t.Logf("heap grew by %d KB over %d invitations; %d events dropped or invitations refused", grown/1024, flood, c.DroppedEvents())
	require.Less(t, grown, int64(24<<20), "heap growth")
	for id := int64(2); id <= waiting; id++ {
		require.Equal(t, smpcall.StateInvitationReceived, c.CallState(id), "contact %d", id)
	}
	for _, id := range []int64{waiting + 1, flood / 2, flood} {
		require.Equal(t, smpcall.StateNone, c.CallState(id), "contact %d was refused", id)
	}
	require.GreaterOrEqual(t, c.DroppedEvents(), uint64(flood-waiting))
}

// Invitations too old to ring do not hold the room: a fresh one lets one of
// them go (it ends as missed here; the core still lists it).
func TestStaleInvitationsMakeRoom(t *testing.T) {
	core := newCoreDouble()
	// Room for every event, so that DroppedEvents counts refusals alone.
	c, err := smpcall.NewClient(core, &smpcall.Config{EventBuffer: 8192})
	require.NoError(t, err)
	defer c.Close()
	const waiting = 1024
	old := time.Now().Add(-time.Hour)
	for id := 1; id <= waiting; id++ {
		core.send(t, invitationJSON(id, old))
	}
	require.Eventually(t, func() bool { return c.CallState(waiting) == smpcall.StateInvitationReceived }, waitTime, time.Millisecond)
	core.send(t, invitationJSON(waiting+1, time.Now()))
	require.Eventually(t, func() bool { return c.CallState(waiting+1) == smpcall.StateInvitationReceived }, waitTime, time.Millisecond)
	missed := 0
	for id := int64(1); id <= waiting; id++ {
		if c.CallState(id) == smpcall.StateNone {
			missed++
		}
	}
	require.Equal(t, 1, missed, "one stale invitation let go")
	require.Zero(t, c.DroppedEvents(), "nothing refused")
}

// Offers for 10,000 contacts that have no call (a broken or hostile core):
// refused as protocol errors, and the contacts the Client remembers stay
// bounded.
func TestHostileCoreOfferFlood(t *testing.T) {
	core := newCoreDouble()
	c, err := smpcall.NewClient(core, nil)
	require.NoError(t, err)
	defer c.Close()
	const flood = 10000
	before := liveHeap()
	for id := 1; id <= flood; id++ {
		core.send(t, offerJSON(id))
	}
	// One more event behind the flood: when it has been handled, so has the flood.
	core.send(t, invitationJSON(flood+1, time.Now()))
	require.Eventually(t, func() bool { return c.CallState(flood+1) == smpcall.StateInvitationReceived }, waitTime, time.Millisecond)
	grown := liveHeap() - before
	t.Logf("heap grew by %d KB over %d offers", grown/1024, flood)
	require.Less(t, grown, int64(16<<20), "heap growth")
	require.Equal(t, smpcall.StateNone, c.CallState(1))
}
