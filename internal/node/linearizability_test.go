package node_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/ids"
)

// TestLinearizableRegister runs concurrent clients against a three-node
// cluster while a nemesis isolates the primary, splits the network into a
// majority and a minority, drops messages and restarts nodes, and checks
// with porcupine that what the clients saw is linearizable: every
// operation appears to take effect at one instant between its call and its
// return. The registers are ids of the logging app's public table; a write
// overwrites the value, a read of an id never written is 404 (the
// register's initial value "").
//
// Writes are sent to a random node (a backup forwards them) with
// WaitCommit. A write answered with its TxID is committed: it took effect
// before its return. A write that failed (timeout, 503, cut connection)
// may or may not have taken effect, now or later: it is recorded as
// called but never returned (its return is after every other event), with
// one exception: TransactionInvalid is the node's promise that the
// transaction never commits, and the write is left out; if that promise
// were false, a read showing its value would have no write to explain it
// and the check fails. An unknown write whose value no read ever returned
// is left out too: it is linearizable at the very end, so it changes
// nothing, and leaving it out keeps the search small.
//
// Reads. A node answers reads from its own state, so a read is not
// linearizable by itself, not even on the primary, and asking
// /node/consensus before and after does not fix it:
//   - a primary cut off from the others still says role leader in term T
//     until CheckQuorum makes it step down, while the majority has
//     already elected a primary of term T+1 that commits writes: the same
//     term before and after proves nothing, the read is stale;
//   - a primary's state holds the transactions it executed but that are
//     not committed yet, and may never be (dirty reads);
//   - raft reports the leadership (consensus leader = self) a moment
//     before the node adopts its log into its state (onRoleChange), so
//     for a moment a new leader reads a state without the previous view's
//     last committed writes.
//
// So a read is counted only when the client has proof that it was served
// by the primary of one view T, after that primary adopted its log, and
// that everything it saw committed. The client asks node P:
//
//  1. GET /node/consensus: P's raft id is its leader, in term T. Raft has
//     at most one leader per term, so P is the only node that can execute
//     a transaction of view T.
//  2. A write of a scratch id (outside the registers), without waiting:
//     its TxID has view T, so P executed it as primary of view T, which P
//     becomes only after adopting every entry of its log into its state.
//     Every write committed before the read's call is in that log (raft's
//     leader completeness; one committed in view T, P executed itself).
//  3. GET the register on P: a snapshot of P's state, which from 2 to 4
//     only grows (a primary rolls back only when it stops being primary,
//     and P cannot be primary of T twice).
//  4. A write of the scratch id with WaitCommit, answered with view T: P
//     was still primary of view T, and the entry, which follows everything
//     the read saw in P's log, committed in term T. So everything the read
//     saw is committed; and the entry was accepted by a majority after the
//     read, so no primary of a later view could have committed anything
//     before the read (the majorities intersect, and a node that voted in
//     a later term refuses term T).
//
// A read that does not get all four answers is dropped: a read has no
// effect, so leaving any of them out cannot turn a linearizable history
// into a non-linearizable one, and those kept can still expose stale or
// dirty reads. The read is linearized at 3, inside [call before 1, return
// after 4].
//
// After the load the network heals and every node runs; the test waits
// until every node answers the same values as confirmed reads on the
// primary (which join the history), checks that every write acknowledged
// as committed is Committed on every node, and that porcupine finds the
// history linearizable. The seeds drive the workload and the nemesis; the
// goroutines run as the scheduler wants, so no two runs are alike, and the
// property must hold in every one. TestLinearizableCheckerRejects shows
// the checker and the model reject what they must.
func TestLinearizableRegister(t *testing.T) {
	seeds := 8
	if testing.Short() {
		seeds = 2
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runLinearizable(t, seed) })
	}
}

const (
	linNodes   = 3
	linKeys    = 3    // register ids 0, 1, 2 of the public table
	linClients = 6    // concurrent clients
	linScratch = 1000 // scratch ids of the read confirmations: linScratch + client
	linLoad    = 3 * time.Second
	linOpLimit = 2 * time.Second // one HTTP call; a node's commit wait is shorter
)

// regInput is an operation on a register: a write of Value, or a read
// (whose output is the value read, "" for not found).
type regInput struct {
	Write bool
	Key   uint64
	Value string
}

// registerModel is a set of registers with initial value "", partitioned
// by key: the history is linearizable if and only if each key's is.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[uint64][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(regInput).Key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.Write {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.Write {
			if output == nil {
				return fmt.Sprintf("put(%d, %q) unknown", in.Key, in.Value)
			}
			return fmt.Sprintf("put(%d, %q)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%d) -> %q", in.Key, output)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

// unknownReturn marks an operation whose outcome is unknown until the
// history is finished; then it returns after every other event.
const unknownReturn = int64(math.MaxInt64)

// linHistory collects the operations of every client.
type linHistory struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	acked []ids.TxID // writes answered as committed
	stats map[string]int
}

func (h *linHistory) now() int64 { return int64(time.Since(h.start)) }

func (h *linHistory) add(op porcupine.Operation, stat string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
	h.stats[stat]++
}

func (h *linHistory) count(stat string) {
	h.mu.Lock()
	h.stats[stat]++
	h.mu.Unlock()
}

// finish returns the history to check: unknown writes return after every
// other event, and those whose value no read returned are left out (see
// the test's comment). Each unknown write gets a client id of its own, as
// a client that gave up on a call and went on.
func (h *linHistory) finish() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := finishHistory(h.ops, linClients)
	for _, op := range out {
		if op.Output == nil {
			h.stats["write: unknown, value read"]++
		}
	}
	return out
}

func finishHistory(ops []porcupine.Operation, clients int) []porcupine.Operation {
	read := map[regInput]bool{}
	var last int64
	for _, op := range ops {
		in := op.Input.(regInput)
		if !in.Write {
			read[regInput{Write: true, Key: in.Key, Value: op.Output.(string)}] = true
		}
		if op.Return != unknownReturn {
			last = max(last, op.Return)
		}
	}
	var out []porcupine.Operation
	next := clients
	for _, op := range ops {
		if op.Return == unknownReturn {
			if !read[op.Input.(regInput)] {
				continue
			}
			op.Return, op.ClientId = last+1, next
			next++
		}
		out = append(out, op)
	}
	return out
}

// linEndpoint is how clients reach node i: nil while it is stopped. The
// nemesis (the test goroutine) replaces it when the node restarts on a new
// port; client goroutines never touch the cluster itself.
type linEndpoint struct {
	cl     *client.Client
	raftID string // as /node/consensus prints it
}

type linCluster struct {
	c   *cluster
	mu  sync.RWMutex
	eps []linEndpoint
}

func (lc *linCluster) endpoint(i int) linEndpoint {
	lc.mu.RLock()
	defer lc.mu.RUnlock()
	return lc.eps[i]
}

func (lc *linCluster) indexOf(raftID string) int {
	lc.mu.RLock()
	defer lc.mu.RUnlock()
	for i, ep := range lc.eps {
		if ep.raftID == raftID {
			return i
		}
	}
	return -1
}

// publish makes node i reachable again after it (re)started.
func (lc *linCluster) publish(i int) {
	cl := lc.c.nodes[i].client("user0")
	lc.mu.Lock()
	lc.eps[i] = linEndpoint{cl: cl, raftID: fmt.Sprintf("%016x", lc.c.ids[i])}
	lc.mu.Unlock()
}

func (lc *linCluster) stop(i int) {
	lc.mu.Lock()
	lc.eps[i].cl = nil
	lc.mu.Unlock()
	lc.c.nodes[i].stop()
}

func (lc *linCluster) running(i int) bool { return lc.c.nodes[i].node != nil }

type consensusDoc struct {
	RaftID string `json:"raft_id"`
	Term   uint64 `json:"term"`
	Leader string `json:"leader"`
}

func consensusOf(ctx context.Context, cl *client.Client) (consensusDoc, error) {
	var doc consensusDoc
	_, err := cl.Do(ctx, "GET", "/node/consensus", nil, &doc)
	return doc, err
}

// confirmedRead reads key on the node it believes primary (hint) with the
// four steps of the test's comment. It returns the value, the call and
// return times, whether the read was confirmed, and the index of the node
// to try next.
func (lc *linCluster) confirmedRead(ctx context.Context, h *linHistory, clientID, seq int, key uint64, hint int) (v string, call, ret int64, ok bool, next int) {
	ep := lc.endpoint(hint)
	if ep.cl == nil {
		return "", 0, 0, false, (hint + 1) % linNodes
	}
	ctx, cancel := context.WithTimeout(ctx, 3*linOpLimit)
	defer cancel()
	call = h.now()
	cons, err := consensusOf(ctx, ep.cl)
	if err != nil {
		return "", 0, 0, false, (hint + 1) % linNodes
	}
	if cons.Leader != cons.RaftID {
		if i := lc.indexOf(cons.Leader); i >= 0 {
			return "", 0, 0, false, i
		}
		return "", 0, 0, false, hint // an election is on: ask again
	}
	view := ids.View(cons.Term)
	scratch := uint64(linScratch + clientID)
	pre, err := ep.cl.LogWrite(ctx, client.Public, scratch, fmt.Sprintf("pre-%d", seq), client.WriteOptions{})
	if err != nil || pre.View != view {
		h.count("read: no primary of the view")
		return "", 0, 0, false, hint
	}
	v, err = ep.cl.LogRead(ctx, client.Public, key)
	if errors.Is(err, client.ErrNotFound) {
		v, err = "", nil
	}
	if err != nil {
		h.count("read: failed")
		return "", 0, 0, false, hint
	}
	post, err := ep.cl.LogWrite(ctx, client.Public, scratch, fmt.Sprintf("post-%d", seq), client.WriteOptions{WaitCommit: true})
	if err != nil || post.View != view {
		h.count("read: not confirmed")
		return "", 0, 0, false, hint
	}
	return v, call, h.now(), true, hint
}

// worker is one client: a seeded random mix of writes of unique values
// and confirmed reads until the deadline.
func (lc *linCluster) worker(ctx context.Context, h *linHistory, id int, rng *rand.Rand, deadline time.Time) {
	hint := rng.IntN(linNodes)
	for seq := 0; time.Now().Before(deadline); seq++ {
		key := uint64(rng.IntN(linKeys))
		if rng.IntN(2) == 0 {
			v, call, ret, ok, next := lc.confirmedRead(ctx, h, id, seq, key, hint)
			hint = next
			if ok {
				h.add(porcupine.Operation{ClientId: id, Input: regInput{Key: key}, Call: call, Output: v, Return: ret}, "read: confirmed")
			} else {
				time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
			}
			continue
		}
		target := rng.IntN(linNodes)
		ep := lc.endpoint(target)
		if ep.cl == nil {
			continue
		}
		in := regInput{Write: true, Key: key, Value: fmt.Sprintf("c%d-%d", id, seq)}
		opCtx, cancel := context.WithTimeout(ctx, linOpLimit)
		call := h.now()
		tx, err := ep.cl.LogWrite(opCtx, client.Public, key, in.Value, client.WriteOptions{WaitCommit: true})
		ret := h.now()
		cancel()
		var apiErr *client.APIError
		switch {
		case err == nil:
			h.add(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: "ok", Return: ret}, "write: committed")
			h.mu.Lock()
			h.acked = append(h.acked, tx)
			h.mu.Unlock()
		case errors.As(err, &apiErr) && apiErr.Code == "TransactionInvalid":
			h.count("write: invalid")
		default:
			h.add(porcupine.Operation{ClientId: id, Input: in, Call: call, Output: nil, Return: unknownReturn}, "write: unknown")
			time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
		}
	}
}

// primaryIndex returns the running node that is primary, or -1.
func (lc *linCluster) primaryIndex() int {
	for i, s := range lc.c.nodes {
		if s.node != nil && s.node.IsPrimary() {
			return i
		}
	}
	return -1
}

// nemesis injects one fault at a time on a seeded schedule until the
// deadline, healing each before the next; it runs on the test goroutine
// (it starts nodes, which may fail the test).
func (lc *linCluster) nemesis(t *testing.T, rng *rand.Rand, deadline time.Time) []string {
	pause := func(minMS, maxMS int) {
		time.Sleep(time.Duration(minMS+rng.IntN(maxMS-minMS)) * time.Millisecond)
	}
	net := lc.c.net
	var log []string
	for time.Now().Before(deadline) {
		pause(100, 400)
		var restart = -1
		switch kind := rng.IntN(5); kind {
		case 0: // isolate the primary
			p := lc.primaryIndex()
			if p < 0 {
				p = rng.IntN(linNodes)
			}
			net.Isolate(lc.c.ids[p])
			log = append(log, fmt.Sprintf("isolate node%d (primary)", p))
		case 1: // a majority and a minority of one
			m := rng.IntN(linNodes)
			var major []uint64
			for i, id := range lc.c.ids {
				if i != m {
					major = append(major, id)
				}
			}
			net.Partition(major, []uint64{lc.c.ids[m]})
			log = append(log, fmt.Sprintf("partition node%d from the others", m))
		case 2, 3: // restart a node, the primary half of the time
			restart = rng.IntN(linNodes)
			if p := lc.primaryIndex(); kind == 2 && p >= 0 {
				restart = p
			}
			lc.stop(restart)
			log = append(log, fmt.Sprintf("restart node%d", restart))
		case 4:
			net.DropRate(0.2)
			log = append(log, "drop 20% of messages")
		}
		pause(200, 800)
		net.Heal()
		net.DropRate(0)
		if restart >= 0 {
			lc.c.add(t, restart, "")
			lc.publish(restart)
		}
	}
	return log
}

func runLinearizable(t *testing.T, seed uint64) {
	c := newCluster(t, linNodes, "[http]\ncommit_wait_timeout_ms = 1500")
	lc := &linCluster{c: c, eps: make([]linEndpoint, linNodes)}
	for i := range linNodes {
		lc.publish(i)
	}
	c.primary()
	ctx := context.Background()
	h := &linHistory{start: time.Now(), stats: map[string]int{}}
	deadline := time.Now().Add(linLoad)
	var wg sync.WaitGroup
	for id := range linClients {
		rng := rand.New(rand.NewPCG(seed, uint64(id)))
		wg.Go(func() { lc.worker(ctx, h, id, rng, deadline) })
	}
	faults := lc.nemesis(t, rand.New(rand.NewPCG(seed, 0x6e656d65736973)), deadline)
	wg.Wait()

	// Quiet: every node runs, the network is whole. Wait until every node
	// answers what a confirmed read on the primary answers.
	c.net.Heal()
	c.net.DropRate(0)
	for i := range linNodes {
		if !lc.running(i) {
			c.add(t, i, "")
			lc.publish(i)
		}
	}
	var final [linKeys]string
	c.eventually("every node to answer the registers' final values", func() bool {
		p := lc.primaryIndex()
		if p < 0 {
			return false
		}
		for k := range uint64(linKeys) {
			v, call, ret, ok, _ := lc.confirmedRead(ctx, h, linClients-1, -1, k, p)
			if !ok {
				return false
			}
			h.add(porcupine.Operation{ClientId: linClients - 1, Input: regInput{Key: k}, Call: call, Output: v, Return: ret}, "read: final")
			final[k] = v
		}
		for i := range linNodes {
			cl := lc.endpoint(i).cl
			for k := range uint64(linKeys) {
				v, err := cl.LogRead(ctx, client.Public, k)
				if errors.Is(err, client.ErrNotFound) {
					v, err = "", nil
				}
				if err != nil || v != final[k] {
					return false
				}
			}
		}
		return true
	})

	// Every write acknowledged as committed is Committed on every node.
	h.mu.Lock()
	acked := slices.Clone(h.acked)
	h.mu.Unlock()
	var top ids.Seqno
	for _, id := range acked {
		top = max(top, id.Seqno)
	}
	c.waitCommitted(top)
	for i := range linNodes {
		cl := lc.endpoint(i).cl
		for _, id := range acked {
			if st, err := cl.TxStatus(ctx, id); err != nil || st != client.StatusCommitted {
				t.Errorf("node%d: acknowledged write %s is %s (%v)", i, id, st, err)
			}
		}
	}

	history := h.finish()
	h.mu.Lock()
	stats := maps.Clone(h.stats)
	h.mu.Unlock()
	if stats["write: committed"] == 0 || stats["read: confirmed"] == 0 {
		t.Errorf("the workload did nothing useful: %v", stats)
	}
	began := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registerModel, history, time.Minute)
	t.Logf("seed %d: %d operations checked in %v; %v; faults: %s", seed, len(history), time.Since(began).Round(time.Millisecond), stats, strings.Join(faults, ", "))
	if res != porcupine.Ok {
		reportNotLinearizable(t, res, info, history)
	}
}

// reportNotLinearizable fails the test with the history of the first key
// that is not linearizable, and writes porcupine's visualization among the
// test's artifacts (go test -artifacts keeps it).
func reportNotLinearizable(t *testing.T, res porcupine.CheckResult, info porcupine.LinearizationInfo, history []porcupine.Operation) {
	t.Helper()
	path := filepath.Join(t.ArtifactDir(), "linearizability.html")
	if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
		t.Logf("visualization: %v", err)
	}
	var b strings.Builder
	for _, part := range registerModel.Partition(history) {
		if porcupine.CheckOperations(registerModel, part) {
			continue
		}
		ops := slices.SortedFunc(slices.Values(part), func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		fmt.Fprintf(&b, "register %d, %d operations (times in ms since the start):\n", part[0].Input.(regInput).Key, len(ops))
		for _, op := range ops {
			end := "unknown"
			if op.Return != unknownReturn && op.Output != nil {
				end = fmt.Sprintf("%.3f", float64(op.Return)/1e6)
			}
			fmt.Fprintf(&b, "  client %2d [%9.3f, %9s] %s\n", op.ClientId, float64(op.Call)/1e6, end, registerModel.DescribeOperation(op.Input, op.Output))
		}
		break
	}
	t.Fatalf("history is %s, not linearizable (visualization: %s)\n%s", res, path, b.String())
}

// TestLinearizableCheckerRejects shows that the model and the checker of
// TestLinearizableRegister can fail: hand-made histories that are not
// linearizable (a stale read, a lost acknowledged write, an unknown write
// that takes effect and is then undone) are Illegal, and their
// linearizable neighbours are Ok; finishHistory keeps an unknown write
// that a read saw.
func TestLinearizableCheckerRejects(t *testing.T) {
	put := func(client int, key uint64, v string, call, ret int64) porcupine.Operation {
		var out any = "ok"
		if ret == unknownReturn {
			out = nil
		}
		return porcupine.Operation{ClientId: client, Input: regInput{Write: true, Key: key, Value: v}, Call: call, Output: out, Return: ret}
	}
	get := func(client int, key uint64, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: regInput{Key: key}, Call: call, Output: v, Return: ret}
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"stale read after an acknowledged write", []porcupine.Operation{
			put(0, 1, "a", 0, 10), put(0, 1, "b", 20, 30), get(1, 1, "a", 40, 50)}, false},
		{"read concurrent with the write", []porcupine.Operation{
			put(0, 1, "a", 0, 10), put(0, 1, "b", 20, 45), get(1, 1, "a", 40, 50)}, true},
		{"acknowledged write lost", []porcupine.Operation{
			put(0, 2, "a", 0, 10), get(1, 2, "", 20, 30)}, false},
		{"read of a never-written value", []porcupine.Operation{
			put(0, 2, "a", 0, 10), get(1, 2, "zzz", 20, 30)}, false},
		{"unknown write seen, then undone", []porcupine.Operation{
			put(0, 0, "a", 0, 10), put(1, 0, "b", 20, unknownReturn), get(2, 0, "b", 30, 40), get(2, 0, "a", 50, 60)}, false},
		{"unknown write seen late", []porcupine.Operation{
			put(0, 0, "a", 0, 10), put(1, 0, "b", 20, unknownReturn), get(2, 0, "a", 30, 40), get(2, 0, "b", 50, 60)}, true},
		{"keys are independent", []porcupine.Operation{
			put(0, 0, "a", 0, 10), put(1, 1, "b", 0, 10), get(2, 0, "a", 20, 30), get(2, 1, "b", 20, 30)}, true},
		{"one bad key fails the whole", []porcupine.Operation{
			put(0, 0, "a", 0, 10), put(1, 1, "b", 0, 10), get(2, 0, "a", 20, 30), get(2, 1, "", 20, 30)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			history := finishHistory(tc.ops, 3)
			if got := porcupine.CheckOperations(registerModel, history); got != tc.want {
				t.Fatalf("linearizable = %v, want %v", got, tc.want)
			}
		})
	}
	kept := finishHistory([]porcupine.Operation{
		put(0, 0, "seen", 0, unknownReturn), put(0, 0, "unseen", 5, unknownReturn), get(1, 0, "seen", 10, 20)}, 2)
	if len(kept) != 2 || kept[0].Return != 21 || kept[0].ClientId != 2 {
		t.Fatalf("finishHistory: %+v", kept)
	}
}
