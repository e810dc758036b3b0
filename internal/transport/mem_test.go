package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// memNet is a MemNetwork whose nodes record what they receive in one
// shared trace, in the order handlers are called.
type memNet struct {
	*MemNetwork
	tr    map[uint64]Transport
	trace []string
	got   map[uint64][]raftpb.Message
}

func newMemNet(t *testing.T, seed uint64, ids ...uint64) *memNet {
	t.Helper()
	n := &memNet{MemNetwork: NewMemNetwork(seed), tr: map[uint64]Transport{}, got: map[uint64][]raftpb.Message{}}
	var peers []Peer
	for _, id := range ids {
		peers = append(peers, Peer{ID: id})
	}
	for _, id := range ids {
		n.tr[id] = n.Join(id, n.handler(id))
		n.tr[id].SetPeers(peers)
	}
	return n
}

func (n *memNet) handler(id uint64) Handler {
	return func(_ context.Context, msgs []raftpb.Message) {
		for _, m := range msgs {
			n.trace = append(n.trace, fmt.Sprintf("%d→%d:%d", m.From, id, m.Index))
		}
		n.got[id] = append(n.got[id], msgs...)
	}
}

// send queues a message from → to tagged with index (to tell them apart).
func (n *memNet) send(from, to, index uint64) {
	n.tr[from].Send([]raftpb.Message{{Type: raftpb.MsgApp, From: from, To: to, Index: index}})
}

// reaches reports whether a fresh message from → to is delivered.
func (n *memNet) reaches(from, to uint64) bool {
	before := len(n.got[to])
	n.send(from, to, 1000)
	n.Deliver()
	return len(n.got[to]) > before
}

func TestMemDeliverOrderIsDeterministic(t *testing.T) {
	run := func() []string {
		n := newMemNet(t, 1, 1, 2, 3)
		n.send(3, 1, 1)
		n.send(1, 2, 2)
		n.send(2, 1, 3)
		n.send(1, 3, 4)
		n.send(3, 1, 5)
		if got := n.Pending(); got != 5 {
			t.Fatalf("pending %d, want 5", got)
		}
		if got := n.Deliver(); got != 5 {
			t.Fatalf("delivered %d, want 5", got)
		}
		return n.trace
	}
	// Recipients in ascending id, each its messages in send order.
	want := []string{"3→1:1", "2→1:3", "3→1:5", "1→2:2", "1→3:4"}
	for range 3 {
		if got := run(); !slices.Equal(got, want) {
			t.Fatalf("trace %v, want %v", got, want)
		}
	}
}

func TestMemNothingMovesUntilDeliver(t *testing.T) {
	n := newMemNet(t, 1, 1, 2)
	n.send(1, 2, 1)
	if len(n.got[2]) != 0 {
		t.Fatal("delivered at Send")
	}
	if n.Deliver() != 1 || len(n.got[2]) != 1 {
		t.Fatal("not delivered by Deliver")
	}
	// A message sent by a handler waits for the next round.
	echo := NewMemNetwork(1)
	var a, b Transport
	a = echo.Join(1, func(_ context.Context, msgs []raftpb.Message) {})
	b = echo.Join(2, func(_ context.Context, msgs []raftpb.Message) {
		b.Send([]raftpb.Message{{Type: raftpb.MsgAppResp, From: 2, To: 1}})
	})
	a.SetPeers([]Peer{{ID: 2}})
	b.SetPeers([]Peer{{ID: 1}})
	a.Send([]raftpb.Message{{Type: raftpb.MsgApp, From: 1, To: 2}})
	if got := echo.Deliver(); got != 1 || echo.Pending() != 1 {
		t.Fatalf("round 1: delivered %d, pending %d; want 1, 1", got, echo.Pending())
	}
	if got := echo.Deliver(); got != 1 || echo.Pending() != 0 {
		t.Fatalf("round 2: delivered %d, pending %d; want 1, 0", got, echo.Pending())
	}
	if got := echo.Deliver(); got != 0 {
		t.Fatalf("round 3 delivered %d", got)
	}
}

func TestMemDeliverOne(t *testing.T) {
	n := newMemNet(t, 1, 1, 2, 3)
	n.send(1, 3, 1)
	n.send(1, 2, 2)
	if !n.DeliverOne() || !slices.Equal(n.trace, []string{"1→3:1"}) {
		t.Fatalf("first DeliverOne: %v", n.trace)
	}
	if !n.DeliverOne() || !slices.Equal(n.trace, []string{"1→3:1", "1→2:2"}) {
		t.Fatalf("second DeliverOne: %v", n.trace)
	}
	if n.DeliverOne() {
		t.Fatal("DeliverOne on an empty queue")
	}
}

func TestMemPartitionBlocksBothDirectionsAndHealRestores(t *testing.T) {
	n := newMemNet(t, 1, 1, 2, 3, 4, 5)
	n.Partition([]uint64{1, 2}, []uint64{3, 4})
	for _, c := range []struct {
		from, to uint64
		want     bool
	}{
		{1, 2, true}, {2, 1, true}, {3, 4, true}, {4, 3, true},
		{1, 3, false}, {3, 1, false}, {2, 4, false}, {4, 2, false},
		{5, 1, false}, {1, 5, false}, // 5 is in no group: alone
	} {
		if got := n.reaches(c.from, c.to); got != c.want {
			t.Errorf("partitioned: %d → %d reaches = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	// In flight when the partition starts: lost.
	n.Heal()
	n.send(1, 3, 7)
	n.Partition([]uint64{1}, []uint64{2, 3, 4, 5})
	n.Deliver()
	if s := n.tr[1].Stats().Peers[3]; s.Dropped == 0 {
		t.Fatalf("message in flight across a new partition not dropped: %+v", s)
	}
	n.Heal()
	for from := uint64(1); from <= 5; from++ {
		for to := uint64(1); to <= 5; to++ {
			if from != to && !n.reaches(from, to) {
				t.Errorf("healed: %d → %d does not reach", from, to)
			}
		}
	}
}

func TestMemIsolate(t *testing.T) {
	n := newMemNet(t, 1, 1, 2, 3)
	n.Isolate(2)
	if n.reaches(1, 2) || n.reaches(2, 3) {
		t.Fatal("isolated node reached")
	}
	if !n.reaches(1, 3) || !n.reaches(3, 1) {
		t.Fatal("the others are cut off too")
	}
	n.Partition([]uint64{1, 2, 3}) // isolation outlives a partition change
	if n.reaches(2, 1) {
		t.Fatal("isolation lifted by Partition")
	}
	n.Heal()
	if !n.reaches(1, 2) || !n.reaches(2, 1) {
		t.Fatal("Heal did not lift the isolation")
	}
}

func TestMemDropRateStatistics(t *testing.T) {
	const total, p = 10000, 0.3
	drops := func(seed uint64) []uint64 {
		n := newMemNet(t, seed, 1, 2)
		n.SetQueueLen(total)
		n.DropRate(p)
		for i := range uint64(total) {
			n.send(1, 2, i)
		}
		n.Deliver()
		s := n.tr[1].Stats().Peers[2]
		if s.Sent+s.Dropped != total || n.tr[2].Stats().Peers[1].Received != s.Sent {
			t.Fatalf("seed %d: counters do not add up: %+v", seed, s)
		}
		var dropped []uint64
		next := uint64(0)
		for _, m := range n.got[2] {
			for ; next < m.Index; next++ {
				dropped = append(dropped, next)
			}
			next = m.Index + 1
		}
		for ; next < total; next++ {
			dropped = append(dropped, next)
		}
		return dropped
	}
	a := drops(42)
	// Binomial(10000, 0.3): mean 3000, σ ≈ 45.8; allow 5σ.
	if mean, sigma := float64(total)*p, math.Sqrt(total*p*(1-p)); math.Abs(float64(len(a))-mean) > 5*sigma {
		t.Fatalf("dropped %d of %d at p=%v", len(a), total, p)
	}
	if b := drops(42); !slices.Equal(a, b) {
		t.Fatal("the same seed dropped different messages")
	}
	if c := drops(43); slices.Equal(a, c) {
		t.Fatal("another seed dropped the same messages")
	}
	n := newMemNet(t, 1, 1, 2)
	n.DropRate(1)
	if n.reaches(1, 2) {
		t.Fatal("drop rate 1 delivered")
	}
	n.DropRate(0)
	if !n.reaches(1, 2) {
		t.Fatal("drop rate 0 dropped")
	}
}

func TestMemCountersAndRefusals(t *testing.T) {
	n := newMemNet(t, 1, 1, 2)
	n.SetQueueLen(2)
	// Unknown peer.
	n.tr[1].Send([]raftpb.Message{{From: 1, To: 9}})
	// Queue bound per link: 2 queued, 1 dropped.
	for i := range uint64(3) {
		n.send(1, 2, i)
	}
	// A node cannot speak for another.
	n.tr[2].Send([]raftpb.Message{{From: 1, To: 1}})
	n.Deliver()
	s1, s2 := n.tr[1].Stats(), n.tr[2].Stats()
	if s := s1.Peers[9]; s.Dropped != 1 {
		t.Errorf("unknown peer: %+v", s)
	}
	if s := s1.Peers[2]; s.Dropped != 1 || s.Sent != 2 {
		t.Errorf("overflow: %+v", s)
	}
	if s := s1.Peers[2]; s.RefusedBatches != 1 || s.Received != 0 {
		t.Errorf("node 1's counters for spoofing node 2: %+v", s)
	}
	if s := s2.Peers[1]; s.Dropped != 1 || s.Received != 2 {
		t.Errorf("node 2's counters for node 1: %+v", s)
	}
	if len(n.got[1]) != 0 {
		t.Error("spoofed message delivered")
	}
}

func TestMemSetPeersCloseAndRejoin(t *testing.T) {
	n := newMemNet(t, 1, 1, 2)
	n.send(1, 2, 1)
	n.tr[1].SetPeers(nil) // its queue to 2 stops
	if n.Pending() != 0 || n.tr[1].Stats().Peers[2].Dropped != 1 {
		t.Fatalf("removed peer: pending %d, %+v", n.Pending(), n.tr[1].Stats().Peers[2])
	}
	n.tr[1].SetPeers([]Peer{{ID: 2}})

	n.send(1, 2, 2)
	n.send(2, 1, 3)
	if err := n.tr[2].Close(); err != nil {
		t.Fatal(err)
	}
	n.tr[2].Close()
	n.send(2, 1, 4)
	if n.Deliver() != 0 || len(n.got[1])+len(n.got[2]) != 0 {
		t.Fatal("delivered to or from a closed node")
	}
	if s := n.tr[2].Stats().Peers[1]; s.Dropped != 2 {
		t.Fatalf("closed node's drops: %+v", s)
	}

	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "already joined") {
				t.Fatalf("double Join: %v", r)
			}
		}()
		n.Join(1, n.handler(1))
	}()
	n.tr[2] = n.Join(2, n.handler(2)) // a restart
	n.tr[2].SetPeers([]Peer{{ID: 1}})
	if !n.reaches(1, 2) || !n.reaches(2, 1) {
		t.Fatal("rejoined node unreachable")
	}
}

func TestMemMessagesAreCopied(t *testing.T) {
	n := newMemNet(t, 1, 1, 2)
	data := []byte("entry")
	n.tr[1].Send([]raftpb.Message{{Type: raftpb.MsgApp, From: 1, To: 2, Entries: []raftpb.Entry{{Index: 1, Data: data}}}})
	data[0] = 'X'
	n.Deliver()
	if got := string(n.got[2][0].Entries[0].Data); got != "entry" {
		t.Fatalf("receiver sees the sender's memory: %q", got)
	}
}

func TestMemForward(t *testing.T) {
	n := NewMemNetwork(1)
	var calls []forwardCall
	primary := func(_ context.Context, from uint64, req *ForwardedRequest) *ForwardedResponse {
		calls = append(calls, forwardCall{from, req})
		if req.Path == "/bad" {
			return &ForwardedResponse{} // status 0: cannot be relayed
		}
		return &ForwardedResponse{Status: http.StatusCreated, Header: http.Header{"X-Coco-Txid": {"2.1"}}, Body: req.Body}
	}
	noop := func(context.Context, []raftpb.Message) {}
	tr := map[uint64]Transport{
		1: n.JoinWithForward(1, noop, nil),
		2: n.JoinWithForward(2, noop, primary),
		3: n.Join(3, noop), // executes no forwarded request
	}
	all := []Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	for _, x := range tr {
		x.SetPeers(all)
	}
	ctx := context.Background()
	req := &ForwardedRequest{Method: http.MethodPost, Path: "/w", RawQuery: "a=1",
		Header: http.Header{"Content-Type": {"text/plain"}, "Authorization": {"secret"}},
		Body:   []byte("body"), CallerCert: []byte{0x30, 1}}
	// forwards reports whether a forward 1 → 2 reaches the handler, and
	// returns Forward's error.
	forwards := func() (bool, error) {
		before := len(calls)
		_, err := tr[1].Forward(ctx, 2, req)
		return len(calls) > before, err
	}

	// Synchronous: answered on return, no Deliver, nothing queued.
	resp, err := tr[1].Forward(ctx, 2, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || n.Pending() != 0 {
		t.Fatalf("%d calls, %d pending after Forward", len(calls), n.Pending())
	}
	if resp.Status != http.StatusCreated || resp.Header.Get("X-Coco-Txid") != "2.1" || string(resp.Body) != "body" {
		t.Fatalf("answer %+v", resp)
	}
	got := calls[0]
	if got.from != 1 || got.req.Path != "/w" || got.req.RawQuery != "a=1" || !bytes.Equal(got.req.CallerCert, []byte{0x30, 1}) ||
		!reflect.DeepEqual(got.req.Header, http.Header{"Content-Type": {"text/plain"}}) {
		t.Fatalf("the handler got %d, %+v", got.from, got.req)
	}
	req.Body[0] = 'X'
	if string(got.req.Body) != "body" {
		t.Fatal("the handler shares the caller's memory")
	}
	req.Body[0] = 'b'

	// Partitions and isolation cut forwards, without calling the handler;
	// Heal restores them. Random drops do not apply.
	n.Partition([]uint64{1}, []uint64{2, 3})
	if reached, err := forwards(); reached || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("across a partition: reached %v, %v", reached, err)
	}
	n.Heal()
	if reached, err := forwards(); !reached || err != nil {
		t.Fatalf("healed: reached %v, %v", reached, err)
	}
	for _, id := range []uint64{1, 2} {
		n.Isolate(id)
		if reached, err := forwards(); reached || !errors.Is(err, ErrUnreachable) {
			t.Fatalf("%d isolated: reached %v, %v", id, reached, err)
		}
		n.Heal()
	}
	n.DropRate(1)
	if reached, err := forwards(); !reached || err != nil {
		t.Fatalf("drop rate 1: reached %v, %v", reached, err)
	}
	n.DropRate(0)

	// Refusals, with the TLS transport's errors.
	var rerr *RefusedError
	if _, err := tr[1].Forward(ctx, 3, req); !errors.As(err, &rerr) || rerr.Status != http.StatusNotImplemented {
		t.Fatalf("no handler: %v", err)
	}
	if _, err := tr[1].Forward(ctx, 9, req); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
	if _, err := tr[1].Forward(ctx, 1, req); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("itself: %v", err)
	}
	if _, err := tr[1].Forward(ctx, 2, &ForwardedRequest{Method: "POST", Path: "/bad"}); !errors.As(err, &rerr) || rerr.Status != http.StatusInternalServerError {
		t.Fatalf("bad answer: %v", err)
	}
	if _, err := tr[1].Forward(ctx, 2, &ForwardedRequest{Method: "POST"}); !errors.Is(err, ErrBadForward) {
		t.Fatalf("bad request: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	before := len(calls)
	if _, err := tr[1].Forward(cctx, 2, req); !errors.Is(err, context.Canceled) || len(calls) != before {
		t.Fatalf("cancelled: %v, handler called %d times", err, len(calls)-before)
	}

	// The primary removes node 1: its forwards and messages are refused.
	tr[2].SetPeers([]Peer{{ID: 2}, {ID: 3}})
	if reached, err := forwards(); reached || !errors.As(err, &rerr) || rerr.Status != http.StatusForbidden ||
		!strings.Contains(rerr.Message, ErrUnknownSender.Error()) {
		t.Fatalf("removed: reached %v, %v", reached, err)
	}
	tr[1].Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	if d := n.Deliver(); d != 0 {
		t.Fatalf("delivered %d messages from a removed node", d)
	}
	if s := tr[2].Stats().Peers[1]; s.UnknownSender != 2 || s.RefusedForwards != 1 || s.RefusedBatches != 1 {
		t.Fatalf("primary's counters for the removed node: %+v", s)
	}
	tr[2].SetPeers(all)
	if reached, err := forwards(); !reached || err != nil {
		t.Fatalf("re-added: reached %v, %v", reached, err)
	}

	// A stopped primary is unreachable; a closed transport forwards nothing.
	tr[2].Close()
	if _, err := forwards(); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("closed primary: %v", err)
	}
	tr[1].Close()
	if _, err := forwards(); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed backup: %v", err)
	}
	s1, s2 := tr[1].Stats().Peers[2], tr[2].Stats().Peers[1]
	if s1.Forwarded != 4 || s1.ForwardFailures != 7 || s2.ForwardsReceived != 5 {
		t.Fatalf("counters: backup %+v, primary %+v", s1, s2)
	}
}

func TestMemRefusesMessagesFromNonPeers(t *testing.T) {
	n := newMemNet(t, 1, 1, 2)
	n.tr[2].SetPeers(nil) // 2 still sends to nobody, and hears nobody
	if n.reaches(1, 2) {
		t.Fatal("a message from a node that is not a peer was delivered")
	}
	if s := n.tr[2].Stats().Peers[1]; s.UnknownSender != 1 || s.RefusedBatches != 1 || s.Received != 0 {
		t.Fatalf("recipient's counters: %+v", s)
	}
	if s := n.tr[1].Stats().Peers[2]; s.Dropped != 1 {
		t.Fatalf("sender's counters: %+v", s)
	}
	n.tr[2].SetPeers([]Peer{{ID: 1}})
	if !n.reaches(1, 2) {
		t.Fatal("not delivered once the sender is a peer")
	}
}

func TestMemNetworkSentSignalsQueuedMessages(t *testing.T) {
	net := NewMemNetwork(1)
	got := map[uint64]int{}
	a := net.Join(1, func(_ context.Context, msgs []raftpb.Message) { got[1] += len(msgs) })
	b := net.Join(2, func(_ context.Context, msgs []raftpb.Message) { got[2] += len(msgs) })
	a.SetPeers([]Peer{{ID: 2}})
	b.SetPeers([]Peer{{ID: 1}})
	sent := net.Sent()
	select {
	case <-sent:
		t.Fatal("signalled before anything was sent")
	default:
	}
	a.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	b.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 2, To: 1}})
	<-sent // one signal for the burst
	select {
	case <-sent:
		t.Fatal("a burst signalled more than once before it was drained")
	default:
	}
	if n := net.Deliver(); n != 2 || got[1] != 1 || got[2] != 1 {
		t.Fatalf("delivered %d (%v), want one message each way", n, got)
	}
	a.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 3}}) // not a peer: dropped, nothing queued
	select {
	case <-sent:
		t.Fatal("signalled for a message that was dropped at Send")
	default:
	}
}
