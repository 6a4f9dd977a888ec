package smpcall

import (
	"fmt"
	"io"
	"log/slog"
)

// Keys never reach logs (docs/protocol.md §5.2 says what the key protects).
// SharedKey formats as "SharedKey(redacted)" under every fmt verb and logs
// as "redacted" through log/slog; the types that carry a key log
// themselves without it. Its wire form is only ever produced by Encode and
// by the JSON encoding of the wire types.

const redacted = "redacted"

// Format hides the key from every fmt verb (%v, %s, %x, %d, %q, %#v, …).
// The one exception is %p applied to a SharedKey value (not a pointer):
// fmt then prints the bytes without asking Format; go vet reports that call.
func (k SharedKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "SharedKey(redacted)") }

// LogValue hides the key from log/slog, text and JSON handlers alike.
func (k SharedKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// keyPresence says in logs whether a key is there, never what it is.
func keyPresence(k *SharedKey) slog.Attr {
	if k == nil {
		return slog.String("sharedKey", "none")
	}
	return slog.String("sharedKey", redacted)
}

// LogValue logs the invitation without its key.
func (r RcvCallInvitation) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("contactId", r.Contact.ContactID),
		slog.String("contact", r.Contact.Name()),
		slog.String("media", string(r.CallType.Media)),
		slog.Bool("encryption", r.CallType.Capabilities.Encryption),
		keyPresence(r.SharedKey),
		slog.String("callUUID", r.CallUUID),
		slog.Time("callTs", r.CallTs.Time),
	)
}

// LogValue logs the event without the invitation's key.
func (e *CallInvitationEvent) LogValue() slog.Value {
	return slog.GroupValue(slog.String("event", "callInvitation"), slog.Any("invitation", e.Invitation))
}

// LogValue logs the event without the invitation's key.
func (e *RingingEvent) LogValue() slog.Value {
	return slog.GroupValue(slog.String("event", "ringing"), slog.Any("invitation", e.Invitation))
}

// LogValue logs the offer without its key (the SDP is left out too: it
// names the parties' addresses).
func (e *CallOfferEvent) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("event", "callOffer"),
		slog.Int64("contactId", e.Contact.ContactID),
		slog.String("media", string(e.CallType.Media)),
		slog.Bool("encryption", e.CallType.Capabilities.Encryption),
		keyPresence(e.SharedKey),
		slog.Bool("askConfirmation", e.AskConfirmation),
	)
}

// LogValue logs the snapshot without its key.
func (i CallInfo) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Int64("contactId", i.Contact.ContactID),
		slog.Bool("incoming", i.Incoming),
		slog.String("state", i.State.String()),
		keyPresence(i.SharedKey),
		slog.Bool("askConfirmation", i.AskConfirmation),
	}
	return slog.GroupValue(attrs...)
}
