package smpcall

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The contacts a Client remembers stay within both bounds, whatever the
// core names; the last one named is always remembered, whole.
func TestKnownContactsBounded(t *testing.T) {
	var k knownContacts
	for id := int64(1); id <= 3*maxKnownContacts; id++ {
		k.put(Contact{ContactID: id, LocalDisplayName: "c"}.WithRaw(json.RawMessage(`{"contactId":1}`)))
		require.LessOrEqual(t, k.len(), maxKnownContacts)
	}
	require.Equal(t, maxKnownContacts, k.len())
	big := strings.Repeat("x", 4096)
	for id := int64(1); id <= 10000; id++ {
		ct := Contact{ContactID: id, Profile: Profile{FullName: big}}.WithRaw(json.RawMessage(fmt.Sprintf(`{"fullName":%q}`, big)))
		k.put(ct)
		require.LessOrEqual(t, k.bytes, maxKnownContactBytes)
		got, ok := k.get(id)
		require.True(t, ok)
		require.Equal(t, big, got.Profile.FullName)
	}
	// Replacing a contact does not count it twice.
	before := k.bytes
	ct, _ := k.get(10000)
	k.put(ct)
	require.Equal(t, before, k.bytes)

	// A contact no core would make is remembered by id only.
	huge := Contact{ContactID: 7, LocalDisplayName: strings.Repeat("y", maxKnownContactBytes)}
	k.put(huge)
	got, ok := k.get(7)
	require.True(t, ok)
	require.Empty(t, got.LocalDisplayName)
	require.LessOrEqual(t, k.bytes, maxKnownContactBytes)
}
