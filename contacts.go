package smpcall

// knownContacts remembers the contacts the transport has named (in
// invitations, offers and the other call events), so that a call placed
// later by contact id carries the whole contact, its name and the core's
// object, in its events and record. What fills it is remote input: a
// hostile or broken chat core can name any number of contacts, each with a
// JSON object of up to a frame's size. So it is bounded in entries and in
// bytes of that JSON; past a bound, arbitrary entries are forgotten, and a
// call to a forgotten contact carries only its id until the core names the
// contact again. A contact with a call holds its own copy (callEntry), so
// forgetting never affects a call in progress.
//
// Not safe for concurrent use: the Client uses it under c.mu.
type knownContacts struct {
	m     map[int64]Contact
	bytes int // of the JSON and names held (contactSize)
}

const (
	// maxKnownContacts is well above any real contact list a call SDK
	// user sees calls from.
	maxKnownContacts = 4096
	// maxKnownContactBytes bounds the core's JSON and the names kept (a
	// real contact object is 1-3 KB).
	maxKnownContactBytes = 8 << 20
)

func (k *knownContacts) get(id int64) (Contact, bool) {
	ct, ok := k.m[id]
	return ct, ok
}

// put remembers ct, replacing what was known of its id.
func (k *knownContacts) put(ct Contact) {
	if k.m == nil {
		k.m = make(map[int64]Contact)
	}
	k.forget(ct.ContactID)
	n := contactSize(ct)
	if n > maxKnownContactBytes/16 {
		// No core makes a contact this large: remember only its id.
		ct = Contact{ContactID: ct.ContactID}
		n = 0
	}
	for id := range k.m {
		if len(k.m) < maxKnownContacts && k.bytes+n <= maxKnownContactBytes {
			break
		}
		k.forget(id)
	}
	k.m[ct.ContactID] = ct
	k.bytes += n
}

func (k *knownContacts) forget(id int64) {
	if old, ok := k.m[id]; ok {
		k.bytes -= contactSize(old)
		delete(k.m, id)
	}
}

// contactSize is what a remembered contact holds beyond its fixed fields:
// the core's object and the names decoded from it.
func contactSize(ct Contact) int {
	return len(ct.raw) + len(ct.LocalDisplayName) + len(ct.Profile.DisplayName) + len(ct.Profile.FullName)
}

// len returns how many contacts are known.
func (k *knownContacts) len() int { return len(k.m) }
