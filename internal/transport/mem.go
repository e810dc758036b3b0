package transport

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"

	"go.etcd.io/raft/v3/raftpb"
)

// MemNetwork is an in-process network for deterministic whole-network
// tests. Nothing moves on its own: Send queues messages and the test hands
// them over with Deliver or DeliverOne, so a test drives rounds without
// goroutines, clocks or sleeps, and the same seed and the same calls give
// the same run.
//
// Faults are decided at delivery, for the messages in flight at that
// moment: a message blocked by a partition or an isolation is dropped (a
// cut link loses what is on it, as TCP connections reset), then a message
// that can pass is dropped with probability DropRate, one draw of the
// seeded generator per such message, in send order. Messages are copied
// through their wire encoding at Send, so nodes never share memory. A
// recipient refuses messages from a node it does not list in SetPeers,
// as a TLS transport does.
//
// Forward is synchronous: it calls the recipient's ForwardHandler in the
// caller's goroutine and returns its answer, with no Deliver. The fault
// is decided when Forward is called: across a partition or an isolation,
// or to a node that is not running, it fails with ErrUnreachable without
// calling the handler; random drops (DropRate) apply to raft messages
// only, so a test decides exactly which forwards fail. Request and answer
// are copied through their wire encoding, so they obey the TLS rules.
type MemNetwork struct {
	mu       sync.Mutex
	rng      *rand.Rand
	dropRate float64
	queueLen int
	members  map[uint64]*memTransport
	queue    []memEnvelope
	pending  map[memLink]int // queued messages per link, for the queue bound
	groups   map[uint64]int  // partition: id → group; nil when none
	isolated map[uint64]bool
	// sent, when set, is signalled (without blocking) after every Send
	// that queued a message: see Sent.
	sent chan struct{}
}

type memLink struct{ from, to uint64 }

type memEnvelope struct {
	from uint64
	msg  raftpb.Message
}

// NewMemNetwork returns an empty network whose random drops are drawn from
// a generator seeded with seed. Each link holds at most DefaultQueueLen
// undelivered messages (SetQueueLen).
func NewMemNetwork(seed uint64) *MemNetwork {
	return &MemNetwork{
		rng:      rand.New(rand.NewPCG(seed, 0x636f636f)), // "coco"
		queueLen: DefaultQueueLen,
		members:  make(map[uint64]*memTransport),
		pending:  make(map[memLink]int),
		isolated: make(map[uint64]bool),
	}
}

// Join adds node id with handler h and returns its transport. The node
// sends only to the peers given to SetPeers (addresses are ignored). A
// node that closed its transport may join again (a restart): messages
// still queued to it are delivered to the new incarnation. Join panics on
// id 0, a nil handler or an id whose transport is open: those are bugs in
// the test.
func (n *MemNetwork) Join(id uint64, h Handler) Transport {
	return n.JoinWithForward(id, h, nil)
}

// JoinWithForward is Join for a node that executes forwarded requests
// with fh; with fh nil it refuses them (501), as Join's node does.
func (n *MemNetwork) JoinWithForward(id uint64, h Handler, fh ForwardHandler) Transport {
	if id == 0 || h == nil {
		panic("transport: MemNetwork.Join needs a non-zero id and a handler")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if m, ok := n.members[id]; ok && !m.closed {
		panic(fmt.Sprintf("transport: MemNetwork.Join: node %x already joined", id))
	}
	m := &memTransport{net: n, id: id, h: h, fh: fh, peers: map[uint64]bool{}}
	n.members[id] = m
	return m
}

// SetQueueLen bounds the undelivered messages per (sender, recipient)
// link; a Send beyond it drops and counts, like a full TLS queue.
func (n *MemNetwork) SetQueueLen(l int) {
	if l <= 0 {
		panic("transport: MemNetwork.SetQueueLen needs a positive length")
	}
	n.mu.Lock()
	n.queueLen = l
	n.mu.Unlock()
}

// Partition splits the network: nodes in different groups cannot reach
// each other, in either direction; a node in no group reaches nobody. It
// replaces the previous partition (isolations stay). Partition panics on a
// node listed twice.
func (n *MemNetwork) Partition(groups ...[]uint64) {
	g := make(map[uint64]int)
	for i, grp := range groups {
		for _, id := range grp {
			if _, dup := g[id]; dup {
				panic(fmt.Sprintf("transport: MemNetwork.Partition: node %x in two groups", id))
			}
			g[id] = i
		}
	}
	n.mu.Lock()
	n.groups = g
	n.mu.Unlock()
}

// Isolate cuts node id off from every other node, both directions, until
// Heal.
func (n *MemNetwork) Isolate(id uint64) {
	n.mu.Lock()
	n.isolated[id] = true
	n.mu.Unlock()
}

// Heal removes the partition and every isolation. The drop rate stays.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	n.groups = nil
	clear(n.isolated)
	n.mu.Unlock()
}

// DropRate sets the probability, in [0, 1], that a deliverable message is
// dropped. It panics outside that range.
func (n *MemNetwork) DropRate(p float64) {
	if math.IsNaN(p) || p < 0 || p > 1 {
		panic(fmt.Sprintf("transport: MemNetwork.DropRate(%v) outside [0, 1]", p))
	}
	n.mu.Lock()
	n.dropRate = p
	n.mu.Unlock()
}

// Pending returns the number of queued, undelivered messages.
func (n *MemNetwork) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.queue)
}

// Sent returns a channel that receives a value (one per burst: it has a
// buffer of one and sends never block) whenever Send has queued messages.
// Tests whose nodes run their own goroutines use it to pump the network:
//
//	for range net.Sent() { net.Deliver() }
//
// without polling. The same channel is returned every time.
func (n *MemNetwork) Sent() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sent == nil {
		n.sent = make(chan struct{}, 1)
	}
	return n.sent
}

// signalSent notifies Sent's channel if there is one. Called with mu held.
func (n *MemNetwork) signalSent() {
	if n.sent == nil || len(n.queue) == 0 {
		return
	}
	select {
	case n.sent <- struct{}{}:
	default:
	}
}

// Deliver hands over every message queued when it is called and returns
// how many reached a handler. Each message is decided in send order
// (blocked → dropped; else dropped with probability DropRate; a recipient
// that is not joined or closed drops it; a message whose From is not its
// sender, or whose sender is not a peer of the recipient, is refused);
// then each recipient's handler is called once, in
// ascending raft id, with its messages in send order. Messages sent during
// Deliver (by handlers) wait for the next call.
func (n *MemNetwork) Deliver() int {
	n.mu.Lock()
	q := n.queue
	n.queue = nil
	return n.deliverLocked(q)
}

// DeliverOne hands over the oldest queued message, under the same rules
// as Deliver, and reports whether there was one (delivered or not).
func (n *MemNetwork) DeliverOne() bool {
	n.mu.Lock()
	if len(n.queue) == 0 {
		n.mu.Unlock()
		return false
	}
	q := n.queue[:1:1]
	n.queue = n.queue[1:]
	n.deliverLocked(q)
	return true
}

// deliverLocked decides q under n.mu, unlocks, and calls the handlers.
func (n *MemNetwork) deliverLocked(q []memEnvelope) int {
	batches := make(map[uint64][]raftpb.Message)
	handlers := make(map[uint64]*memTransport)
	for _, e := range q {
		to := e.msg.To
		n.unpendLocked(e.from, to)
		sender := n.members[e.from]
		if n.blockedLocked(e.from, to) || (n.dropRate > 0 && n.rng.Float64() < n.dropRate) {
			sender.stats.get(to).dropped.Add(1)
			continue
		}
		dst, ok := n.members[to]
		if !ok || dst.closed {
			sender.stats.get(to).dropped.Add(1)
			continue
		}
		if e.msg.From != e.from || !dst.peers[e.from] {
			sender.stats.get(to).dropped.Add(1)
			c := dst.stats.get(e.from)
			c.refused.Add(1)
			if !dst.peers[e.from] {
				c.unknownSender.Add(1)
			}
			continue
		}
		sender.stats.get(to).sent.Add(1)
		dst.stats.get(e.from).received.Add(1)
		batches[to] = append(batches[to], e.msg)
		handlers[to] = dst
	}
	n.mu.Unlock()
	delivered := 0
	for _, to := range slices.Sorted(maps.Keys(batches)) {
		handlers[to].h(context.Background(), batches[to])
		delivered += len(batches[to])
	}
	return delivered
}

func (n *MemNetwork) blockedLocked(a, b uint64) bool {
	if n.isolated[a] || n.isolated[b] {
		return true
	}
	if n.groups == nil {
		return false
	}
	ga, okA := n.groups[a]
	gb, okB := n.groups[b]
	return !okA || !okB || ga != gb
}

// memTransport is one node's Transport on a MemNetwork. All its state is
// guarded by the network's mutex.
type memTransport struct {
	net    *MemNetwork
	id     uint64
	h      Handler
	fh     ForwardHandler
	peers  map[uint64]bool
	closed bool
	stats  statsTable
}

func (m *memTransport) Send(msgs []raftpb.Message) {
	n := m.net
	n.mu.Lock()
	defer n.mu.Unlock()
	defer n.signalSent()
	for i := range msgs {
		to := msgs[i].To
		link := memLink{m.id, to}
		if m.closed || !m.peers[to] || n.pending[link] >= n.queueLen {
			m.stats.get(to).dropped.Add(1)
			continue
		}
		cp, err := cloneMessage(&msgs[i])
		if err != nil {
			panic(fmt.Sprintf("transport: MemNetwork: message does not round-trip: %v", err))
		}
		n.pending[link]++
		n.queue = append(n.queue, memEnvelope{from: m.id, msg: cp})
	}
}

func (m *memTransport) SetPeers(peers []Peer) {
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	if m.closed {
		return
	}
	old := m.peers
	m.peers = make(map[uint64]bool, len(peers))
	for _, p := range peers {
		if p.ID != 0 && p.ID != m.id {
			m.peers[p.ID] = true
		}
	}
	m.net.dropQueuedLocked(func(e *memEnvelope) bool {
		return e.from == m.id && old[e.msg.To] && !m.peers[e.msg.To]
	})
}

// Forward hands req to the ForwardHandler of node to, synchronously (see
// MemNetwork), with ctx: the network does not cancel it, and a ctx done
// before the call fails it without calling the handler.
func (m *memTransport) Forward(ctx context.Context, to uint64, req *ForwardedRequest) (*ForwardedResponse, error) {
	wire, err := EncodeForwardedRequest(req)
	if err != nil {
		return nil, err
	}
	n := m.net
	n.mu.Lock()
	if m.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	if to == m.id {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: %x is this node", ErrUnknownPeer, to)
	}
	c := m.stats.get(to)
	dst, err := n.forwardTargetLocked(m, to)
	n.mu.Unlock()
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("transport: forwarding to peer %x: %w", to, context.Cause(ctx))
	}
	if err != nil {
		c.forwardFailed.Add(1)
		return nil, err
	}
	in, err := DecodeForwardedRequest(wire)
	if err != nil { // it was just encoded: a bug here, not the caller's
		panic(fmt.Sprintf("transport: MemNetwork: forwarded request does not round-trip: %v", err))
	}
	// The handler runs without the lock: it may Send or Forward.
	answer, err := EncodeForwardedResponse(dst.fh(ctx, m.id, in))
	dst.stats.get(m.id).forwardsReceived.Add(1)
	if err != nil {
		c.forwardFailed.Add(1)
		return nil, &RefusedError{Peer: to, Kind: RefusedForward, Status: http.StatusInternalServerError,
			Message: "transport: the primary's answer cannot be relayed: " + err.Error()}
	}
	out, err := DecodeForwardedResponse(answer)
	if err != nil {
		panic(fmt.Sprintf("transport: MemNetwork: forwarded response does not round-trip: %v", err))
	}
	c.forwarded.Add(1)
	return out, nil
}

// forwardTargetLocked returns the node a Forward from m to to reaches, or
// why it does not, with the TLS transport's errors: unknown peer, cut
// link or stopped node (ErrUnreachable), refusals (*RefusedError).
func (n *MemNetwork) forwardTargetLocked(m *memTransport, to uint64) (*memTransport, error) {
	if !m.peers[to] {
		return nil, fmt.Errorf("%w: %x is not a current peer", ErrUnknownPeer, to)
	}
	if n.blockedLocked(m.id, to) {
		return nil, fmt.Errorf("%w: peer %x is cut off from %x", ErrUnreachable, to, m.id)
	}
	dst, ok := n.members[to]
	if !ok || dst.closed {
		return nil, fmt.Errorf("%w: peer %x is not running", ErrUnreachable, to)
	}
	dc := dst.stats.get(m.id)
	if !dst.peers[m.id] {
		dc.refusedForwards.Add(1)
		dc.unknownSender.Add(1)
		return nil, &RefusedError{Peer: to, Kind: RefusedForward, Status: http.StatusForbidden,
			Message: fmt.Sprintf("%v: node %x is not a peer of node %x", ErrUnknownSender, m.id, to)}
	}
	if dst.fh == nil {
		dc.refusedForwards.Add(1)
		return nil, &RefusedError{Peer: to, Kind: RefusedForward, Status: http.StatusNotImplemented, Message: errNoForwardHandler.Error()}
	}
	return dst, nil
}

func (m *memTransport) Stats() Stats { return m.stats.snapshot() }

// Close drops the node's queued messages, as a TLS transport's queues
// stop, and makes later Sends drop. Messages to it are dropped at delivery
// until a new transport joins with its id.
func (m *memTransport) Close() error {
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.net.dropQueuedLocked(func(e *memEnvelope) bool { return e.from == m.id })
	}
	return nil
}

// dropQueuedLocked removes the queued messages that match, counting them
// as dropped by their sender.
func (n *MemNetwork) dropQueuedLocked(match func(*memEnvelope) bool) {
	n.queue = slices.DeleteFunc(n.queue, func(e memEnvelope) bool {
		if !match(&e) {
			return false
		}
		n.unpendLocked(e.from, e.msg.To)
		n.members[e.from].stats.get(e.msg.To).dropped.Add(1)
		return true
	})
}

func (n *MemNetwork) unpendLocked(from, to uint64) {
	l := memLink{from, to}
	if n.pending[l]--; n.pending[l] <= 0 {
		delete(n.pending, l)
	}
}

// cloneMessage copies m through its protobuf encoding, as the wire would.
func cloneMessage(m *raftpb.Message) (raftpb.Message, error) {
	b, err := m.Marshal()
	if err != nil {
		return raftpb.Message{}, err
	}
	var out raftpb.Message
	err = out.Unmarshal(b)
	return out, err
}
