package smp

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/smpcall/smpcall"
	"github.com/smpcall/smpcall/internal/eventq"
)

// Faults are the fault knobs of one direction of a loopback link. The zero
// value delivers every message once, in order, at once — as SMP does (the
// agent keeps order and suppresses duplicates, protocol §4.5). The faults
// model what a broken or hostile SMP stack could do.
type Faults struct {
	// Drop is the probability that a message is lost.
	Drop float64
	// Duplicate is the probability that a message is delivered twice.
	Duplicate float64
	// Delay delays every message.
	Delay time.Duration
	// Jitter adds a random delay in [0, Jitter) to every message.
	Jitter time.Duration
	// Reorder is the probability that a message is held back and delivered
	// right after the next message on the link (or after HoldTimeout).
	Reorder float64
	// HoldTimeout bounds how long a reordered message waits for a
	// successor. Default 50 ms.
	HoldTimeout time.Duration
}

// Fate says what a loopback link did with one message.
type Fate string

// Fates reported in a Trace.
const (
	Delivered  Fate = "delivered"
	Dropped    Fate = "dropped"
	Duplicated Fate = "duplicate"
)

// Trace describes one message crossing (or failing to cross) a loopback link.
type Trace struct {
	// From and To are the names of the sending and receiving users.
	From, To string
	// Seq numbers the messages sent on this link (1, 2, …) in send order;
	// traces of one link may arrive out of Seq order (drops are reported at
	// send time, deliveries when due).
	Seq uint64
	// Data is the chat message, the JSON bytes that were sent.
	Data []byte
	// Fate says whether the link delivered, dropped or duplicated it.
	Fate Fate
}

// NetworkConfig configures a Network; nil means defaults.
type NetworkConfig struct {
	// Seed seeds the fault decisions of every link, so a faulty run can be
	// repeated. Default 1.
	Seed uint64
	// Trace, if set, is called for every message a link delivers or drops,
	// from the link's goroutine, in delivery order per link. It must not block for long.
	Trace func(Trace)
	// Core is the configuration template for the users' cores (AddUser may override it).
	Core *CoreConfig
	// Logger receives the network's logs. Default silent.
	Logger *slog.Logger
	// UniqueContactIDs numbers contacts across the whole network (1, 2, …
	// in order of connection) instead of per user. A real chat core's
	// contact ids are unique across all its users (one database), so
	// serve several users on one ChatServer only with this set. Default:
	// each user numbers its own contacts 1, 2, ….
	UniqueContactIDs bool
}

// Network is an in-memory SMP network: users, each with a Core, connected
// pairwise by loopback pipes with optional faults per direction. Every
// message crosses as the exact bytes of the chat message, so tests exercise
// the real wire format.
//
// Concurrency: all methods are safe for concurrent use. Close stops every
// core and link and waits for their goroutines.
type Network struct {
	cfg NetworkConfig
	log *slog.Logger

	mu      sync.Mutex
	users   map[string]*netUser
	order   []string
	links   map[[2]string]*link
	nextID  int64 // UniqueContactIDs: the next contact id
	closed  bool
	linksWG sync.WaitGroup
}

type netUser struct {
	name      string
	core      *Core
	online    bool
	nextID    int64
	contactOf map[string]int64
}

// NewNetwork returns an empty network.
func NewNetwork(cfg *NetworkConfig) *Network {
	var c NetworkConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Network{cfg: c, log: c.Logger, users: make(map[string]*netUser), links: make(map[[2]string]*link)}
}

// AddUser creates a user with its own Core (userId = 1, 2, … in order of
// creation). cfg overrides NetworkConfig.Core for this user; nil uses it.
func (n *Network) AddUser(name string, cfg *CoreConfig) (*Core, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, smpcall.ErrClosed
	}
	if name == "" {
		return nil, errors.New("smp: empty user name")
	}
	if _, ok := n.users[name]; ok {
		return nil, fmt.Errorf("smp: user %q exists", name)
	}
	if cfg == nil {
		cfg = n.cfg.Core
	}
	user := smpcall.User{UserID: int64(len(n.order) + 1), LocalDisplayName: name}
	u := &netUser{name: name, core: NewCore(user, cfg), online: true, nextID: 1, contactOf: make(map[string]int64)}
	n.users[name] = u
	n.order = append(n.order, name)
	return u.core, nil
}

// Core returns the named user's core, or nil.
func (n *Network) Core(name string) *Core {
	n.mu.Lock()
	defer n.mu.Unlock()
	if u := n.users[name]; u != nil {
		return u.core
	}
	return nil
}

// Users returns the user names in order of creation.
func (n *Network) Users() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.order...)
}

// Connect makes a and b contacts of each other over a new loopback
// connection. Each side numbers its contacts 1, 2, … in order of
// connection (with UniqueContactIDs, the network numbers them all). It
// returns the contact ids: b's id at a, and a's id at b.
func (n *Network) Connect(a, b string) (idAtA, idAtB int64, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0, 0, smpcall.ErrClosed
	}
	ua, ub := n.users[a], n.users[b]
	if ua == nil || ub == nil || a == b {
		return 0, 0, fmt.Errorf("smp: cannot connect %q and %q", a, b)
	}
	if _, ok := ua.contactOf[b]; ok {
		return 0, 0, fmt.Errorf("smp: %q and %q are already contacts", a, b)
	}
	pa, pb := newEndpoint(), newEndpoint()
	ab := n.newLink(ua, ub, pa, pb)
	ba := n.newLink(ub, ua, pb, pa)
	pa.out, pb.out = ab, ba
	if n.cfg.UniqueContactIDs {
		idAtA, idAtB = n.nextID+1, n.nextID+2
		n.nextID += 2
	} else {
		idAtA, idAtB = ua.nextID, ub.nextID
		ua.nextID++
		ub.nextID++
	}
	ua.contactOf[b], ub.contactOf[a] = idAtA, idAtB
	if err := ua.core.AddContact(netContact(idAtA, b), pa); err != nil {
		return 0, 0, err
	}
	if err := ub.core.AddContact(netContact(idAtB, a), pb); err != nil {
		return 0, 0, err
	}
	return idAtA, idAtB, nil
}

func netContact(id int64, name string) smpcall.Contact {
	return smpcall.Contact{ContactID: id, LocalDisplayName: name, Profile: smpcall.Profile{DisplayName: name}}
}

// ContactID returns peer's contact id at user, or 0 if they are not contacts.
func (n *Network) ContactID(user, peer string) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	if u := n.users[user]; u != nil {
		return u.contactOf[peer]
	}
	return 0
}

// SetFaults sets the faults of the direction from → to.
func (n *Network) SetFaults(from, to string, f Faults) error {
	n.mu.Lock()
	l := n.links[[2]string{from, to}]
	n.mu.Unlock()
	if l == nil {
		return fmt.Errorf("smp: no link from %q to %q", from, to)
	}
	l.mu.Lock()
	l.faults = f
	l.mu.Unlock()
	l.poke()
	return nil
}

// SetOnline takes a user off the network or brings it back. While a user is
// offline nothing is delivered to or from it; messages wait (as on SMP
// servers) and flow when it is back.
func (n *Network) SetOnline(name string, online bool) error {
	n.mu.Lock()
	u := n.users[name]
	if u == nil {
		n.mu.Unlock()
		return fmt.Errorf("smp: no user %q", name)
	}
	u.online = online
	var affected []*link
	for k, l := range n.links {
		if k[0] == name || k[1] == name {
			affected = append(affected, l)
		}
	}
	n.mu.Unlock()
	for _, l := range affected {
		l.poke()
	}
	return nil
}

func (n *Network) bothOnline(a, b *netUser) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return a.online && b.online
}

// Close closes every core (and so every pipe), stops the links and waits.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	cores := make([]*Core, 0, len(n.users))
	for _, name := range n.order {
		cores = append(cores, n.users[name].core)
	}
	links := make([]*link, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	n.mu.Unlock()
	var errs []error
	for _, c := range cores {
		errs = append(errs, c.Close())
	}
	for _, l := range links {
		l.stop()
	}
	n.linksWG.Wait()
	return errors.Join(errs...)
}

// --- pipes and links -----------------------------------------------------

// endpoint is one end of a loopback connection.
type endpoint struct {
	inbox *eventq.Queue[[]byte]
	out   *link

	mu     sync.Mutex
	closed bool
}

func newEndpoint() *endpoint { return &endpoint{inbox: eventq.New[[]byte]()} }

// ErrPipeClosed is returned by a closed loopback pipe.
var ErrPipeClosed = errors.New("smp: pipe closed")

func (p *endpoint) Send(ctx context.Context, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrPipeClosed
	}
	p.out.enqueue(append([]byte(nil), msg...))
	return nil
}

func (p *endpoint) Receive(ctx context.Context) ([]byte, error) {
	select {
	case m, ok := <-p.inbox.C():
		if !ok {
			return nil, ErrPipeClosed
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *endpoint) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.inbox.Close()
	return nil
}

func (p *endpoint) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// link is one direction of a loopback connection with its faults. One
// goroutine per link delivers messages when they are due.
type link struct {
	n        *Network
	from, to *netUser
	src, dst *endpoint

	mu      sync.Mutex
	faults  Faults
	rng     *rand.Rand
	seq     uint64 // delivery order among equal due times
	sent    uint64 // messages sent on the link, for Trace.Seq
	pending []*delivery
	held    *delivery
	wake    chan struct{}
	quit    chan struct{}
	once    sync.Once
}

type delivery struct {
	due  time.Time
	seq  uint64
	data []byte
	dup  bool
	sent uint64
}

func (n *Network) newLink(from, to *netUser, src, dst *endpoint) *link {
	h := fnv.New64a()
	h.Write([]byte(from.name + "\x00" + to.name))
	l := &link{n: n, from: from, to: to, src: src, dst: dst,
		rng: rand.New(rand.NewPCG(n.cfg.Seed, h.Sum64())), wake: make(chan struct{}, 1), quit: make(chan struct{})}
	n.links[[2]string{from.name, to.name}] = l
	n.linksWG.Add(1)
	go func() {
		defer n.linksWG.Done()
		l.run()
	}()
	return l
}

func (l *link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *link) stop() { l.once.Do(func() { close(l.quit) }) }

// enqueue applies the faults that are decided at send time.
func (l *link) enqueue(data []byte) {
	l.mu.Lock()
	f := l.faults
	now := time.Now()
	l.sent++
	sent := l.sent
	if f.Drop > 0 && l.rng.Float64() < f.Drop {
		l.mu.Unlock()
		l.trace(sent, data, Dropped)
		return
	}
	due := now.Add(f.Delay)
	if f.Jitter > 0 {
		due = due.Add(time.Duration(l.rng.Int64N(int64(f.Jitter))))
	}
	d := &delivery{due: due, data: data, sent: sent}
	l.seq++
	d.seq = l.seq
	if l.held != nil {
		// Release the held message right after this one.
		h := l.held
		l.held = nil
		h.due = d.due
		l.seq++
		h.seq = l.seq // h is still in pending; it now sorts right after d
	}
	if f.Reorder > 0 && l.rng.Float64() < f.Reorder {
		hold := f.HoldTimeout
		if hold <= 0 {
			hold = 50 * time.Millisecond
		}
		d.due = due.Add(hold)
		l.held = d
		l.pending = append(l.pending, d) // delivered at the timeout unless released earlier
	} else {
		l.pending = append(l.pending, d)
	}
	if f.Duplicate > 0 && l.rng.Float64() < f.Duplicate {
		l.seq++
		l.pending = append(l.pending, &delivery{due: d.due, seq: l.seq, data: data, dup: true, sent: sent})
	}
	l.mu.Unlock()
	l.poke()
}

func (l *link) trace(sent uint64, data []byte, fate Fate) {
	if l.n.cfg.Trace != nil {
		l.n.cfg.Trace(Trace{From: l.from.name, To: l.to.name, Seq: sent, Data: data, Fate: fate})
	}
}

// next returns the earliest pending delivery, removing it if it is due.
func (l *link) next(now time.Time) (d *delivery, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return nil, -1
	}
	sort.SliceStable(l.pending, func(i, j int) bool {
		a, b := l.pending[i], l.pending[j]
		if !a.due.Equal(b.due) {
			return a.due.Before(b.due)
		}
		return a.seq < b.seq
	})
	first := l.pending[0]
	if first.due.After(now) {
		return nil, first.due.Sub(now)
	}
	l.pending = l.pending[1:]
	if l.held == first {
		l.held = nil
	}
	return first, 0
}

func (l *link) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if l.dst.isClosed() {
			return
		}
		wait := time.Duration(-1)
		if l.n.bothOnline(l.from, l.to) {
			var d *delivery
			d, wait = l.next(time.Now())
			if d != nil {
				fate := Delivered
				if d.dup {
					fate = Duplicated
				}
				// Trace first, so that a trace never lags what the receiver saw.
				l.trace(d.sent, d.data, fate)
				l.dst.inbox.Push(d.data)
				continue
			}
		}
		if wait < 0 && l.src.isClosed() {
			return
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-l.wake:
		case <-l.quit:
			return
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// Inject sends raw bytes from one user to another over their link, as if
// from's SMP stack had sent them, subject to the link's faults: for tests of
// what a broken or hostile peer can send.
func (n *Network) Inject(from, to string, data []byte) error {
	n.mu.Lock()
	l := n.links[[2]string{from, to}]
	n.mu.Unlock()
	if l == nil {
		return fmt.Errorf("smp: no link from %q to %q", from, to)
	}
	l.enqueue(append([]byte(nil), data...))
	return nil
}
