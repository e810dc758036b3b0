package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestReplicaProposeDuringPersist blocks the leader's ProcessReady inside
// the ledger fsync of a Ready's entries and meanwhile, from the test
// goroutine, proposes two entries, steps a follower's message, ticks and
// reads the status: none of it waits for the disk (the replica's lock is
// free during the write). The entries proposed during the persist come in
// the next Ready and commit at the next indices on every replica.
func TestReplicaProposeDuringPersist(t *testing.T) {
	nw := newNet(t, 5, 3, 4096)
	defer nw.close()
	p := nw.primary(nil, 0)
	nw.converge()
	var f *member
	for _, m := range nw.members {
		if m != p {
			f = m
		}
	}
	st := p.r.Status()
	want := nw.propose(p, 1) // at st.LastIndex+1

	entered, release := make(chan struct{}), make(chan struct{})
	block := func(name string) {
		if !strings.HasPrefix(name, ledgerDir(p.dir)+"/") {
			return
		}
		p.syncHook.Store(nil) // block the first ledger fsync only
		close(entered)
		<-release
	}
	p.syncHook.Store(&block)
	done := make(chan error, 1)
	go func() { done <- p.r.ProcessReady() }()
	<-entered
	// ProcessReady is inside Storage.Append, in the ledger's fsync. A
	// Propose or Step now would wait for the fsync if the lock were held:
	// fail rather than hang.
	if !p.r.mu.TryLock() {
		close(release)
		<-done
		t.Fatal("ProcessReady holds the replica's lock across the fsync of its entries")
	}
	p.r.mu.Unlock()
	for k, v := range nw.propose(p, 2) {
		want[k] = v
	}
	p.r.Step(context.Background(), []raftpb.Message{{Type: raftpb.MsgHeartbeatResp, From: f.id, To: p.id, Term: st.Term}})
	p.r.Tick()
	if got := p.r.Status(); !got.Primary || got.LastIndex != st.LastIndex+3 || got.Commit != st.LastIndex {
		t.Fatalf("leader during the persist: %+v; want primary, last index %d, commit %d", got, st.LastIndex+3, st.LastIndex)
	}
	if !p.r.HasReady() {
		t.Fatal("the proposals made during the persist wait for no Ready")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("ProcessReady: %v", err)
	}
	if got := p.r.Status().LastIndex; got != st.LastIndex+3 {
		t.Fatalf("leader's last index %d after the Ready, want %d: the proposals made during it are forgotten", got, st.LastIndex+3)
	}

	nw.round(false)
	if got := p.r.Status(); got.Commit != st.LastIndex+3 || p.reported != st.LastIndex+3 {
		t.Fatalf("after a round: %+v, reported %d; want all three entries committed (%d)", got, p.reported, st.LastIndex+3)
	}
	nw.converge()
	for _, m := range nw.members {
		got := readEncoded(t, m.l, st.LastIndex+1, st.LastIndex+3)
		for seqno, data := range want {
			if !bytes.Equal(got[seqno], data) {
				t.Fatalf("node %d: entry %d is not the one proposed", m.id, seqno)
			}
		}
	}
}

// TestReplicaPipelining interleaves, from a seeded generator, the
// leader's proposals, every replica's ProcessReady and message deliveries
// over a three-node network, many of them from inside the fsyncs of a
// Ready being persisted: a hook in each file system runs them there, in
// the same goroutine, so the run is deterministic (and a lock held across
// the write would deadlock it). Throughout, every proposal at the next
// index the test counts is accepted, one beyond it is refused with that
// index as the one wanted, and the leader's tracked last index is the
// test's count after every Ready; at the end every replica's ledger holds
// exactly the proposals at consecutive seqnos, committed, byte-identical.
func TestReplicaPipelining(t *testing.T) {
	seeds := 8
	if testing.Short() {
		seeds = 2
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { pipelineScenario(t, 200+seed) })
	}
}

func pipelineScenario(t *testing.T, seed uint64) {
	nw := newNet(t, seed, 3, 2048)
	defer nw.close()
	p := nw.primary(nil, 0)
	nw.converge()
	rng := nw.rng
	start := p.r.Status()
	next := start.LastIndex + 1 // the leader's next index, as the test counts
	proposed := map[uint64][]byte{}
	inReady := map[uint64]bool{} // replicas whose ProcessReady is on the stack
	depth, duringPersist, wrong := 0, 0, 0

	propose := func() {
		for range 1 + rng.IntN(4) {
			if st := p.r.Status(); !st.Primary || st.Term != start.Term || st.LastIndex != next-1 {
				t.Fatalf("leader before proposing %d: %+v", next, st)
			}
			e, data := nextEntry(rng, start.Term, next)
			if err := p.r.Propose(e); err != nil {
				t.Fatalf("Propose(%d): %v", next, err)
			}
			proposed[next] = data
			next++
			if inReady[p.id] {
				duringPersist++
			}
		}
		if rng.IntN(4) == 0 {
			e, _ := nextEntry(rng, start.Term, next+1)
			var se *StaleSeqnoError
			if err := p.r.Propose(e); !errors.As(err, &se) || se.Want != next {
				t.Fatalf("Propose(%d) with %d next: %v", next+1, next, err)
			}
			wrong++
		}
	}
	process := func(m *member) {
		// A ProcessReady of m further up the stack waits for this one:
		// calling it again would deadlock (the calls are serialised).
		if inReady[m.id] || !m.r.HasReady() {
			return
		}
		inReady[m.id] = true
		err := m.r.ProcessReady()
		inReady[m.id] = false
		if err != nil {
			t.Fatalf("node %d: ProcessReady: %v", m.id, err)
		}
		if m == p {
			if got := p.r.Status().LastIndex; got != next-1 {
				t.Fatalf("leader's last index %d after a Ready, want %d", got, next-1)
			}
		}
	}
	act := func() {
		switch k := rng.IntN(10); {
		case k < 3:
			propose()
		case k < 7:
			process(nw.members[rng.IntN(len(nw.members))])
		case k < 9:
			nw.mem.DeliverOne()
		default:
			nw.mem.Deliver()
		}
	}
	hook := func(string) {
		if depth == 3 || rng.IntN(3) == 0 {
			return
		}
		depth++
		for range 1 + rng.IntN(4) {
			act()
		}
		depth--
	}
	for _, m := range nw.members {
		m.syncHook.Store(&hook)
	}
	for range 400 {
		act()
	}
	for _, m := range nw.members {
		m.syncHook.Store(nil)
	}
	if duringPersist == 0 || wrong == 0 {
		t.Fatalf("%d proposals during the leader's persists, %d refused: the run does not test pipelining", duringPersist, wrong)
	}

	nw.converge()
	last := next - 1
	for _, m := range nw.members {
		st := m.r.Status()
		if st.LastIndex != last || st.Term != start.Term {
			t.Fatalf("node %d: %+v; want last index %d at term %d", m.id, st, last, start.Term)
		}
		got := readEncoded(t, m.l, start.LastIndex+1, last)
		for seqno := start.LastIndex + 1; seqno <= last; seqno++ {
			if !bytes.Equal(got[seqno], proposed[seqno]) {
				t.Fatalf("node %d: entry %d is not the one proposed at that index", m.id, seqno)
			}
		}
	}
	t.Logf("%d proposals (%d during the leader's persists), %d refused at a wrong index", len(proposed), duringPersist, wrong)
}
