package consensus

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/vfs"
)

// node is one raft member in a test: its file system, ledger, Storage and
// RawNode, driven by hand.
type node struct {
	id        uint64
	fsys      *vfs.Mem
	dir       string
	chunkSize int64
	l         *ledger.Ledger
	s         *Storage
	rn        *raft.RawNode
	applied   []raftpb.Entry // committed entries raft handed out
	// hs is the latest HardState handed to the Storage; voteCommit is the
	// commit index of the last one that changed the term or vote. With
	// fewer than CommitSaveInterval entries, the HardState file holds hs's
	// term and vote with commit voteCommit (see Storage.SetHardState).
	hs         raftpb.HardState
	voteCommit uint64
}

// wantSaved is the HardState a crash of n leaves in its file (with fewer
// than CommitSaveInterval entries committed since the last term or vote
// change).
func (n *node) wantSaved() raftpb.HardState {
	return raftpb.HardState{Term: n.hs.Term, Vote: n.hs.Vote, Commit: n.voteCommit}
}

// start opens the node's storage (bootstrapping it with voters if given)
// and a RawNode on it, the way a Coco node starts at genesis and restart.
func startNode(t testing.TB, id uint64, fsys *vfs.Mem, chunkSize int64, voters ...uint64) *node {
	t.Helper()
	n := &node{id: id, fsys: fsys, dir: fmt.Sprintf("/node%d", id), chunkSize: chunkSize}
	n.s, n.l = open(t, fsys, n.dir, chunkSize)
	if len(voters) > 0 {
		if err := n.s.Bootstrap(voters...); err != nil {
			t.Fatal(err)
		}
	}
	hs, _, err := n.s.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	n.hs, n.voteCommit = hs, hs.Commit
	n.rn, err = raft.NewRawNode(&raft.Config{
		ID:              id,
		ElectionTick:    10,
		HeartbeatTick:   1,
		Storage:         n.s,
		Applied:         hs.Commit,
		MaxSizePerMsg:   4 << 10, // small, so catching up takes several messages
		MaxInflightMsgs: 16,
		Logger:          raftQuiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// handleReady persists one Ready (entries, then HardState), applies its
// committed entries, advances, and returns the messages to send.
func (n *node) handleReady(t testing.TB) []raftpb.Message {
	t.Helper()
	rd := n.rn.Ready()
	if err := n.s.Append(rd.Entries); err != nil {
		t.Fatalf("node %d: Append: %v", n.id, err)
	}
	if err := n.s.SetHardState(rd.HardState); err != nil {
		t.Fatalf("node %d: SetHardState: %v", n.id, err)
	}
	if hs := rd.HardState; !raft.IsEmptyHardState(hs) {
		if hs.Term != n.hs.Term || hs.Vote != n.hs.Vote {
			n.voteCommit = hs.Commit
		}
		n.hs = hs
	}
	for _, e := range rd.CommittedEntries {
		if e.Type == raftpb.EntryConfChangeV2 {
			var cc raftpb.ConfChangeV2
			if err := cc.Unmarshal(e.Data); err != nil {
				t.Fatal(err)
			}
			n.rn.ApplyConfChange(cc)
		}
		n.applied = append(n.applied, e)
	}
	if len(rd.CommittedEntries) > 0 {
		if err := n.l.SetCommitted(ids.Seqno(rd.CommittedEntries[len(rd.CommittedEntries)-1].Index)); err != nil {
			t.Fatal(err)
		}
	}
	n.rn.Advance(rd)
	return rd.Messages
}

// nextEntry returns the raft data of a ledger entry for the leader's next
// index: a transaction, or every fifth one a signature (which lets chunks
// complete).
func nextEntry(rng *rand.Rand, term, index uint64) (*ledger.Entry, []byte) {
	e := &ledger.Entry{Kind: ledger.KindTx, View: ids.View(term), Seqno: ids.Seqno(index), Public: randBytes(rng, 50+rng.IntN(150))}
	if index%5 == 0 {
		e.Kind = ledger.KindSignature
	}
	copy(e.CommitEvidenceDigest[:], randBytes(rng, 32))
	return e, e.AppendBinary(nil)
}

func (n *node) lastIndex(t testing.TB) uint64 {
	last, err := n.s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// settle runs one node until it has nothing more to do.
func (n *node) settle(t testing.TB) {
	t.Helper()
	for range 100 {
		if !n.rn.HasReady() {
			return
		}
		if msgs := n.handleReady(t); len(msgs) > 0 {
			t.Fatalf("single node sent %d messages", len(msgs))
		}
	}
	t.Fatal("node does not settle")
}

func TestSingleNodeRaft(t *testing.T) {
	rng := seeded(20)
	fsys := vfs.NewMem()
	n := startNode(t, 1, fsys, 2048, 1)
	if err := n.rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	st := n.rn.Status()
	if st.RaftState != raft.StateLeader || st.Term != 2 {
		t.Fatalf("after Campaign: %v at term %d; want leader at term 2", st.RaftState, st.Term)
	}
	proposed := map[uint64][]byte{}
	for round := range 5 {
		next := n.lastIndex(t) + 1
		for i := range uint64(round + 1) {
			_, data := nextEntry(rng, st.Term, next+i)
			if err := n.rn.Propose(data); err != nil {
				t.Fatal(err)
			}
			proposed[next+i] = data
		}
		n.settle(t)
		if commit := n.rn.Status().Commit; commit != n.lastIndex(t) || commit != next+uint64(round) {
			t.Fatalf("round %d: commit %d, last index %d; want both %d", round, commit, n.lastIndex(t), next+uint64(round))
		}
	}
	for index, data := range proposed {
		var stored []byte
		if err := n.l.ReadRange(ids.Seqno(index), ids.Seqno(index), func(_ *ledger.Entry, enc []byte) error { stored = enc; return nil }); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stored, data) {
			t.Fatalf("entry %d stored differs from the proposal", index)
		}
		i := slices.IndexFunc(n.applied, func(e raftpb.Entry) bool { return e.Index == index })
		if i < 0 || !bytes.Equal(n.applied[i].Data, data) {
			t.Fatalf("entry %d not handed out as committed, or changed", index)
		}
	}
	last := n.lastIndex(t)
	before := n.applied // entries 2 (the election's empty entry) … last
	if len(before) != int(last-1) || before[0].Index != 2 {
		t.Fatalf("raft handed out %s; want entries 2…%d", describe(before), last)
	}
	// The latest HardState has the whole log committed; the file has the
	// election's (term 2, vote 1) with the commit index as of then, 1: a
	// change of the commit index alone is not written.
	latest := raftpb.HardState{Term: 2, Vote: 1, Commit: last}
	if n.s.HardState() != latest || n.hs != latest || n.wantSaved() != (raftpb.HardState{Term: 2, Vote: 1, Commit: 1}) {
		t.Fatalf("latest HardState %+v (tracked %+v, saved %+v); want %+v, saved with commit 1", n.s.HardState(), n.hs, n.wantSaved(), latest)
	}
	if got := savedState(t, fsys, n.dir); got != n.wantSaved() {
		t.Fatalf("HardState file holds %+v; want %+v", got, n.wantSaved())
	}

	// Restart after a crash (the image is taken before SaveHardState) and
	// after a clean stop (SaveHardState, then close): same log, same
	// voters, and a new election at a higher term.
	crashed := fsys.Crash(seeded(21))
	if err := n.s.SaveHardState(); err != nil {
		t.Fatal(err)
	}
	closeLedger(t, n.l)
	for _, c := range []struct {
		name string
		img  *vfs.Mem
		want raftpb.HardState
	}{
		{"clean stop", fsys, latest},
		{"crash", crashed, n.wantSaved()},
	} {
		n := startNode(t, 1, c.img, 2048)
		hs, cs, err := n.s.InitialState()
		if err != nil || hs != c.want || !slices.Equal(cs.Voters, []uint64{1}) {
			t.Fatalf("%s: after restart: %+v, %+v, %v; want HardState %+v, voters [1]", c.name, hs, cs, err, c.want)
		}
		if err := n.rn.Campaign(); err != nil {
			t.Fatal(err)
		}
		n.settle(t)
		_, data := nextEntry(rng, 3, last+2) // last+1 is the new leader's empty entry
		if err := n.rn.Propose(data); err != nil {
			t.Fatal(err)
		}
		n.settle(t)
		if st := n.rn.Status(); st.Term != 3 || st.Commit != last+2 || n.lastIndex(t) != last+2 {
			t.Fatalf("%s: after restart: term %d, commit %d, last %d; want 3, %d, %d", c.name, st.Term, st.Commit, n.lastIndex(t), last+2, last+2)
		}
		// Raft hands out every entry committed after the saved commit
		// index, in order: after the clean stop only the two new ones;
		// after the crash also those applied before it, again, each with
		// the data it had (the node re-applies them, idempotently).
		if len(n.applied) != int(last+2-hs.Commit) {
			t.Fatalf("%s: after restart raft handed out %s; want entries %d…%d", c.name, describe(n.applied), hs.Commit+1, last+2)
		}
		for i, e := range n.applied {
			switch {
			case e.Index != hs.Commit+1+uint64(i):
				t.Fatalf("%s: after restart raft handed out %s; want entries %d…%d in order", c.name, describe(n.applied), hs.Commit+1, last+2)
			case e.Index <= last && !sameEntry(e, before[e.Index-2]):
				t.Fatalf("%s: entry %d handed out again as %s; before the restart it was %s", c.name, e.Index, describe([]raftpb.Entry{e}), describe(before[e.Index-2:e.Index-1]))
			case e.Index == last+1 && (e.Term != 3 || len(e.Data) != 0):
				t.Fatalf("%s: entry %d is %s; want the empty entry of term 3", c.name, e.Index, describe([]raftpb.Entry{e}))
			case e.Index == last+2 && !bytes.Equal(e.Data, data):
				t.Fatalf("%s: entry %d is not the proposal", c.name, e.Index)
			}
		}
		closeLedger(t, n.l)
	}
}

// cluster routes messages between nodes: every round, each node with a
// Ready persists it, then all messages are delivered in order. Fully
// deterministic: no ticks, no goroutines.
type cluster struct {
	nodes []*node
	cut   map[uint64]bool // nodes partitioned away from all others
}

func (c *cluster) settle(t testing.TB) {
	t.Helper()
	for range 10000 {
		var msgs []raftpb.Message
		busy := false
		for _, n := range c.nodes {
			if n.rn.HasReady() {
				busy = true
				msgs = append(msgs, n.handleReady(t)...)
			}
		}
		if !busy {
			return
		}
		for _, m := range msgs {
			if c.cut[m.From] || c.cut[m.To] || m.To > uint64(len(c.nodes)) {
				continue // partitioned, or not started yet
			}
			if err := c.nodes[m.To-1].rn.Step(m); err != nil {
				t.Fatalf("node %d: Step(%v): %v", m.To, m.Type, err)
			}
		}
	}
	t.Fatal("cluster does not settle")
}

// propose has node n, the leader, propose count ledger entries.
func (c *cluster) propose(t testing.TB, rng *rand.Rand, n *node, count int) {
	t.Helper()
	st := n.rn.Status()
	if st.RaftState != raft.StateLeader {
		t.Fatalf("node %d is %v, not leader", n.id, st.RaftState)
	}
	// The leader's last index: its own progress knows it.
	next := st.Progress[n.id].Next
	for i := range uint64(count) {
		_, data := nextEntry(rng, st.Term, next+i)
		if err := n.rn.Propose(data); err != nil {
			t.Fatal(err)
		}
	}
}

// files returns the name and content of every file in a ledger directory.
func files(t testing.TB, fsys vfs.FS, dir string) map[string][]byte {
	t.Helper()
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := vfs.ReadFile(fsys, filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestThreeNodeRaft runs three bootstrapped RawNodes over their Storages:
// an election, 100 proposals, a cut-off leader whose uncommitted suffix
// the next leader overwrites, a node restarted from a crash image that
// catches up (re-applying the entries after its saved commit index), and
// a fourth node joining as a learner from an empty log.
// Afterwards every ledger directory is byte-identical.
func TestThreeNodeRaft(t *testing.T) {
	rng := seeded(30)
	const chunkSize = 4096
	c := &cluster{cut: map[uint64]bool{}}
	for id := uint64(1); id <= 3; id++ {
		c.nodes = append(c.nodes, startNode(t, id, vfs.NewMem(), chunkSize, 1, 2, 3))
	}
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	if err := n1.rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	c.settle(t)
	for i := 0; i < 100; i += 10 {
		c.propose(t, rng, n1, 10)
		c.settle(t)
	}
	want := n1.lastIndex(t) // 3 bootstrap entries, the empty entry, 100 proposals
	if want != 104 {
		t.Fatalf("leader's last index %d, want 104", want)
	}

	// The leader, cut off, appends entries nobody else gets; node 2 wins
	// the next election; once healed, node 1's suffix is overwritten.
	c.cut[1] = true
	c.propose(t, rng, n1, 7)
	c.settle(t)
	if n1.lastIndex(t) != want+7 {
		t.Fatalf("cut-off leader's last index %d, want %d", n1.lastIndex(t), want+7)
	}
	if err := n2.rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	c.settle(t)
	c.propose(t, rng, n2, 3)
	c.settle(t)
	delete(c.cut, 1)
	// The leader's probe of node 1 went unanswered; a heartbeat (one tick:
	// HeartbeatTick is 1) reaches it now. Only the leader ticks, so no
	// election timer runs out.
	n2.rn.Tick()
	c.settle(t)
	c.propose(t, rng, n2, 10)
	c.settle(t)

	if last := n2.lastIndex(t); last != want+1+13 {
		t.Fatalf("new leader's last index %d, want %d", last, want+14)
	}

	// Node 3 misses 40 entries, restarts from a crash image of its files,
	// and catches up from the leader's ledger (Storage.Entries), in
	// several 4 KiB messages.
	c.cut[3] = true
	for range 4 {
		c.propose(t, rng, n2, 10)
		c.settle(t)
	}
	// Node 3's HardState file has its latest term and vote and the commit
	// index as of their last change (node 2's election); the commit index
	// alone is not written, so after the crash it lags what node 3 had
	// applied.
	closeLedger(t, n3.l)
	applied3, saved3 := n3.applied, n3.wantSaved()
	if got := savedState(t, n3.fsys, n3.dir); got != saved3 || saved3.Term != 3 || saved3.Commit >= applied3[len(applied3)-1].Index {
		t.Fatalf("node 3's HardState file holds %+v; want %+v, at term 3, behind the last entry applied (%d)", got, saved3, applied3[len(applied3)-1].Index)
	}
	n3 = startNode(t, 3, n3.fsys.Crash(seeded(31)), chunkSize)
	if hs, _, err := n3.s.InitialState(); err != nil || hs != saved3 {
		t.Fatalf("node 3 restarts with HardState %+v, %v; want %+v", hs, err, saved3)
	}
	c.nodes[2] = n3
	delete(c.cut, 3)
	n2.rn.Tick()
	c.settle(t)

	// Node 4 joins as a learner with an empty Storage (no Bootstrap): it
	// gets the whole log from index 1 and the membership with it.
	cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode, NodeID: 4}}}
	if err := n2.rn.ProposeConfChange(cc); err != nil {
		t.Fatal(err)
	}
	c.settle(t)
	n4 := startNode(t, 4, vfs.NewMem(), chunkSize)
	c.nodes = append(c.nodes, n4)
	n2.rn.Tick()
	c.settle(t)
	c.propose(t, rng, n2, 5)
	c.settle(t)

	last := n2.lastIndex(t)
	if last != want+1+13+40+1+5 {
		t.Fatalf("leader's last index %d, want %d", last, want+60)
	}
	for _, n := range c.nodes {
		st := n.rn.Status()
		if n.lastIndex(t) != last || st.Commit != last || st.Term != 3 {
			t.Fatalf("node %d: last %d, commit %d, term %d; want %d, %d, 3", n.id, n.lastIndex(t), st.Commit, st.Term, last, last)
		}
		if _, err := n.l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	want1 := files(t, n2.fsys, ledgerDir(n2.dir))
	if len(want1) < 4 {
		t.Fatalf("%d ledger files; the test wants chunks to rotate", len(want1))
	}
	for _, n := range []*node{n1, n3, n4} {
		got := files(t, n.fsys, ledgerDir(n.dir))
		if len(got) != len(want1) {
			t.Fatalf("node %d has %d ledger files, node 2 has %d", n.id, len(got), len(want1))
		}
		for name, b := range want1 {
			if !bytes.Equal(got[name], b) {
				t.Fatalf("node %d: file %s differs from node 2's", n.id, name)
			}
		}
	}
	// Node 3, restarted from a crash, was handed again every entry after
	// its saved commit index, in order, each with the data it had applied
	// before (an idempotent re-apply), and then the rest: counting the
	// re-applied ones once, it applied what node 2 did.
	lastBefore := applied3[len(applied3)-1].Index
	k := slices.IndexFunc(n3.applied, func(e raftpb.Entry) bool { return e.Index > lastBefore })
	if len(n3.applied) == 0 || n3.applied[0].Index != saved3.Commit+1 || k != int(lastBefore-saved3.Commit) {
		t.Fatalf("node 3 restarted at commit %d (it had applied up to %d) and was handed %s; want the entries from %d on", saved3.Commit, lastBefore, describe(n3.applied), saved3.Commit+1)
	}
	for i, e := range n3.applied {
		if e.Index != saved3.Commit+1+uint64(i) {
			t.Fatalf("node 3 was handed %s after its restart; want consecutive entries", describe(n3.applied))
		}
		if i < k {
			if j := slices.IndexFunc(applied3, func(a raftpb.Entry) bool { return a.Index == e.Index }); j < 0 || !sameEntry(applied3[j], e) {
				t.Fatalf("node 3 re-applied entry %s, which it had applied as %s", describe([]raftpb.Entry{e}), describe(applied3[max(j, 0):max(j+1, 0)]))
			}
		}
	}
	n3.applied = append(slices.Clone(applied3), n3.applied[k:]...)
	// Every node handed out the same committed entries, each once: the
	// founders from index 4 on (1…3 are their Bootstrap), node 4 all.
	if len(n4.applied) < 3 || !slices.EqualFunc(n4.applied[:3], []raftpb.Entry{addVoter(1, 1, 1), addVoter(1, 2, 2), addVoter(1, 3, 3)}, sameEntry) {
		t.Fatalf("node 4 did not apply the bootstrap entries first: %s", describe(n4.applied[:min(3, len(n4.applied))]))
	}
	for _, n := range []*node{n1, n3, n4} {
		applied := n.applied
		if n == n4 {
			applied = applied[3:]
		}
		if !slices.EqualFunc(applied, n2.applied, sameEntry) {
			t.Fatalf("node %d applied %s\nnode 2 applied %s", n.id, describe(applied), describe(n2.applied))
		}
	}
	for _, n := range c.nodes {
		if _, cs, err := n.s.InitialState(); err != nil || !slices.Equal(cs.Voters, []uint64{1, 2, 3}) || !slices.Equal(cs.Learners, []uint64{4}) {
			t.Fatalf("node %d: ConfState %+v, %v; want voters 1 2 3, learner 4", n.id, cs, err)
		}
	}
	for _, n := range c.nodes {
		closeLedger(t, n.l)
	}
}
