package smpcall

import "context"

// ticket is a place on a contact's line.
type ticket uint64

// line orders the transport commands of one contact by the moment they
// were decided, not by which goroutine gets to run first: the core applies
// commands in the order it receives them and an x.call.end ends whatever
// call is current (protocol §4.2), so the end of a finished call must reach
// it before the next call's invitation. A command takes a ticket under
// Client.mu when it is decided and waits for its turn before its I/O.
type line struct {
	next, serving ticket
	// abandoned tickets are skipped when their turn comes.
	abandoned map[ticket]bool
	// turn is closed, and replaced, whenever serving moves.
	turn chan struct{}
}

// ticket takes the next place on the contact's line. Caller holds c.mu.
func (c *Client) ticket(contactID int64) ticket {
	l := c.lines[contactID]
	if l == nil {
		l = &line{turn: make(chan struct{})}
		c.lines[contactID] = l
	}
	t := l.next
	l.next++
	return t
}

// onLine waits for ticket t's turn, runs send, and lets the next one go.
// If ctx ends first the ticket is given up and skipped later.
func (c *Client) onLine(ctx context.Context, contactID int64, t ticket, send func(context.Context) error) error {
	for {
		c.mu.Lock()
		l := c.lines[contactID]
		if l.serving == t {
			c.mu.Unlock()
			break
		}
		turn := l.turn
		c.mu.Unlock()
		select {
		case <-turn:
		case <-ctx.Done():
			c.skipTicket(contactID, t)
			return ctx.Err()
		}
	}
	defer c.skipTicket(contactID, t)
	return send(ctx)
}

// skipTicket gives up ticket t: done if it is being served, skipped when
// its turn comes otherwise.
func (c *Client) skipTicket(contactID int64, t ticket) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.skipTicketLocked(contactID, t)
}

// skipTicketLocked is skipTicket for a caller that holds c.mu.
func (c *Client) skipTicketLocked(contactID int64, t ticket) {
	l := c.lines[contactID]
	if l.serving != t {
		if l.abandoned == nil {
			l.abandoned = map[ticket]bool{}
		}
		l.abandoned[t] = true
		return
	}
	l.serving++
	for l.abandoned[l.serving] {
		delete(l.abandoned, l.serving)
		l.serving++
	}
	close(l.turn)
	l.turn = make(chan struct{})
	if l.serving == l.next {
		delete(c.lines, contactID) // idle: nothing waits
	}
}
