package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/transport"
	"github.com/cocoledger/coco/internal/vfs"
)

// member is one replica of a test network: its file system, ledger,
// Storage, transport and Replica, and what its callbacks saw.
type member struct {
	id       uint64
	fsys     *vfs.Mem
	dir      string
	l        *ledger.Ledger
	s        *Storage
	tr       transport.Transport
	r        *Replica
	reported uint64   // last commit index OnCommit reported (or the start's)
	commits  []uint64 // every OnCommit value
	roles    []string // every OnRoleChange, "leader@term" or "follower@term"
	down     bool
	// applied is the ledger bytes of every seqno OnCommit reported, across
	// restarts; reapplied counts the seqnos reported again after a restart
	// (the saved commit index lags the latest: see Storage.SetHardState).
	applied   map[uint64][]byte
	reapplied int
	// syncHook, if set, runs at the start of every File.Sync of the
	// member's disk (see hookFS).
	syncHook atomic.Pointer[func(name string)]
	// sendHook, if set, runs with every batch the Replica hands to its
	// transport, before the transport queues it (see hookTransport).
	sendHook atomic.Pointer[func(msgs []raftpb.Message)]
}

// hookTransport is a transport.Transport that calls *hook, when set, with
// every batch before sending it, in the sending goroutine: a test sees
// what the Replica sends, and when.
type hookTransport struct {
	transport.Transport
	hook *atomic.Pointer[func(msgs []raftpb.Message)]
}

func (t hookTransport) Send(msgs []raftpb.Message) {
	if h := t.hook.Load(); h != nil {
		(*h)(msgs)
	}
	t.Transport.Send(msgs)
}

// hookFS is a vfs.FS whose files call *hook, when set, at the start of
// every Sync, in the syncing goroutine: a test blocks a write in progress,
// or runs code inside it.
type hookFS struct {
	vfs.FS
	hook *atomic.Pointer[func(name string)]
}

func (f hookFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	return f.wrap(f.FS.OpenFile(name, flag, perm))
}

func (f hookFS) Create(name string) (vfs.File, error) { return f.wrap(f.FS.Create(name)) }

func (f hookFS) Open(name string) (vfs.File, error) { return f.wrap(f.FS.Open(name)) }

func (f hookFS) wrap(file vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return hookFile{File: file, hook: f.hook}, nil
}

type hookFile struct {
	vfs.File
	hook *atomic.Pointer[func(name string)]
}

func (f hookFile) Sync() error {
	if h := f.hook.Load(); h != nil {
		(*h)(f.Name())
	}
	return f.File.Sync()
}

// net is a network of replicas over a transport.MemNetwork and vfs.Mem
// disks, driven in rounds by the test: no goroutines, clocks or sleeps.
// Raft randomises election timeouts with its own generator, so runs may
// differ in who wins which election; the checks are invariants.
type net struct {
	t         testing.TB
	rng       *rand.Rand
	mem       *transport.MemNetwork
	chunkSize int64
	members   []*member         // index id-1
	leaders   map[uint64]uint64 // term → the replica that became leader in it
	// onLeader, if set, runs in OnRoleChange when a replica becomes leader.
	onLeader  func(m *member, term uint64)
	committed map[uint64][]byte // seqno → ledger bytes, as any OnCommit saw them
	peers     []transport.Peer
}

func newNet(t testing.TB, seed uint64, n int, chunkSize int64) *net {
	t.Helper()
	nw := &net{
		t: t, rng: seeded(seed), mem: transport.NewMemNetwork(seed), chunkSize: chunkSize,
		leaders: map[uint64]uint64{}, committed: map[uint64][]byte{},
	}
	voters := make([]uint64, n)
	for i := range voters {
		voters[i] = uint64(i + 1)
		nw.peers = append(nw.peers, transport.Peer{ID: voters[i]})
	}
	for _, id := range voters {
		m := &member{id: id, fsys: vfs.NewMem(), dir: fmt.Sprintf("/node%d", id)}
		nw.members = append(nw.members, m)
		nw.start(m, voters...)
	}
	return nw
}

// start opens m's ledger and Storage (bootstrapping them if voters are
// given), joins the network and starts its Replica: the node's genesis
// and restart path.
func (nw *net) start(m *member, voters ...uint64) {
	t := nw.t
	t.Helper()
	m.s, m.l = open(t, hookFS{FS: m.fsys, hook: &m.syncHook}, m.dir, nw.chunkSize)
	if len(voters) > 0 {
		if err := m.s.Bootstrap(voters...); err != nil {
			t.Fatal(err)
		}
	}
	m.tr = hookTransport{
		Transport: nw.mem.Join(m.id, func(ctx context.Context, msgs []raftpb.Message) { m.r.Step(ctx, msgs) }),
		hook:      &m.sendHook,
	}
	m.tr.SetPeers(nw.peers)
	r, err := NewReplica(ReplicaConfig{
		ID: m.id, Storage: m.s, Transport: m.tr, Logger: quiet,
		OnCommit:     func(c uint64) { nw.onCommit(m, c) },
		OnRoleChange: func(leader bool, term uint64) { nw.onRole(m, leader, term) },
	})
	if err != nil {
		t.Fatal(err)
	}
	m.r, m.down = r, false
	m.reported = r.Status().Applied
}

// onCommit checks that commits grow, records the committed entries' bytes
// and fails if another replica committed different bytes at a seqno, or
// if this one, reporting a seqno again after a restart, has other bytes
// there than it applied before (a re-apply must be idempotent).
func (nw *net) onCommit(m *member, c uint64) {
	t := nw.t
	if c <= m.reported {
		t.Fatalf("node %d: OnCommit(%d) after %d", m.id, c, m.reported)
	}
	if m.applied == nil {
		m.applied = map[uint64][]byte{}
	}
	for seqno, enc := range readEncoded(t, m.l, m.reported+1, c) {
		if prev, ok := nw.committed[seqno]; ok && !bytes.Equal(prev, enc) {
			t.Fatalf("node %d committed other bytes at seqno %d than another replica", m.id, seqno)
		}
		nw.committed[seqno] = enc
		if prev, ok := m.applied[seqno]; ok {
			if !bytes.Equal(prev, enc) {
				t.Fatalf("node %d re-applies other bytes at seqno %d than it applied before", m.id, seqno)
			}
			m.reapplied++
		}
		m.applied[seqno] = enc
	}
	m.reported = c
	m.commits = append(m.commits, c)
	if err := m.l.SetCommitted(ids.Seqno(c)); err != nil {
		t.Fatalf("node %d: SetCommitted(%d): %v", m.id, c, err)
	}
}

// onRole checks that no two replicas lead in the same term.
func (nw *net) onRole(m *member, leader bool, term uint64) {
	if !leader {
		m.roles = append(m.roles, fmt.Sprintf("follower@%d", term))
		return
	}
	m.roles = append(m.roles, fmt.Sprintf("leader@%d", term))
	if prev, ok := nw.leaders[term]; ok && prev != m.id {
		nw.t.Fatalf("nodes %d and %d both led term %d", prev, m.id, term)
	}
	nw.leaders[term] = m.id
	if nw.onLeader != nil {
		nw.onLeader(m, term)
	}
}

// readEncoded returns the ledger bytes of entries lo…hi.
func readEncoded(t testing.TB, l *ledger.Ledger, lo, hi uint64) map[uint64][]byte {
	t.Helper()
	out := map[uint64][]byte{}
	if lo > hi {
		return out
	}
	err := l.ReadRange(ids.Seqno(lo), ids.Seqno(hi), func(e *ledger.Entry, enc []byte) error {
		out[uint64(e.Seqno)] = bytes.Clone(enc)
		return nil
	})
	if err != nil {
		t.Fatalf("read %d…%d: %v", lo, hi, err)
	}
	return out
}

func (nw *net) live() []*member {
	var out []*member
	for _, m := range nw.members {
		if !m.down {
			out = append(out, m)
		}
	}
	return out
}

// round ticks every live replica once if tick, then processes Readies
// and delivers messages until the network is quiet. After it, the
// invariants hold: at most one leader per term among the live replicas.
func (nw *net) round(tick bool) {
	t := nw.t
	t.Helper()
	if tick {
		for _, m := range nw.live() {
			m.r.Tick()
		}
	}
	for range 1000 {
		busy := false
		for _, m := range nw.live() {
			for m.r.HasReady() {
				busy = true
				if err := m.r.ProcessReady(); err != nil {
					t.Fatalf("node %d: ProcessReady: %v", m.id, err)
				}
			}
		}
		if !busy && nw.mem.Pending() == 0 {
			nw.checkLeaders()
			return
		}
		nw.mem.Deliver()
	}
	t.Fatal("network does not settle")
}

// checkLeaders fails if two live replicas are leaders of the same term.
func (nw *net) checkLeaders() {
	seen := map[uint64]uint64{}
	for _, m := range nw.live() {
		st := m.r.Status()
		if st.Role != raft.StateLeader {
			continue
		}
		if other, ok := seen[st.Term]; ok {
			nw.t.Fatalf("nodes %d and %d are both leaders of term %d", other, m.id, st.Term)
		}
		seen[st.Term] = m.id
	}
}

// primary runs tick rounds until exactly one of group (nil: all live) is
// primary at a term above after, and returns it.
func (nw *net) primary(group []uint64, after uint64) *member {
	t := nw.t
	t.Helper()
	for range 300 {
		var found []*member
		for _, m := range nw.live() {
			if group != nil && !slices.Contains(group, m.id) {
				continue
			}
			if st := m.r.Status(); st.Primary && st.Term > after {
				found = append(found, m)
			}
		}
		if len(found) == 1 {
			return found[0]
		}
		nw.round(true)
	}
	t.Fatalf("no primary among %v after term %d", group, after)
	return nil
}

// propose has m propose count entries (every fifth a signature) at its
// next seqnos, and returns their bytes by seqno.
func (nw *net) propose(m *member, count int) map[uint64][]byte {
	t := nw.t
	t.Helper()
	out := map[uint64][]byte{}
	st := m.r.Status()
	for i := range uint64(count) {
		e, data := nextEntry(nw.rng, st.Term, st.LastIndex+1+i)
		if err := m.r.Propose(e); err != nil {
			t.Fatalf("node %d: Propose(%d@%d): %v", m.id, e.Seqno, e.View, err)
		}
		out[uint64(e.Seqno)] = data
	}
	if got := m.r.Status().LastIndex; got != st.LastIndex+uint64(count) {
		t.Fatalf("node %d: last index %d after %d proposals from %d", m.id, got, count, st.LastIndex)
	}
	return out
}

// converge runs tick rounds until every live replica has the same log,
// fully committed and reported, then checks the ledgers are
// byte-identical and hold every entry any OnCommit reported.
func (nw *net) converge() {
	t := nw.t
	t.Helper()
	for range 300 {
		if nw.converged() {
			break
		}
		nw.round(true)
	}
	if !nw.converged() {
		for _, m := range nw.live() {
			t.Logf("node %d: %+v", m.id, m.r.Status())
		}
		t.Fatal("replicas do not converge")
	}
	live := nw.live()
	ref := live[0]
	want := files(t, ref.fsys, ledgerDir(ref.dir))
	for _, m := range live[1:] {
		got := files(t, m.fsys, ledgerDir(m.dir))
		if !slices.Equal(slices.Sorted(mapKeys(got)), slices.Sorted(mapKeys(want))) {
			t.Fatalf("node %d has ledger files %v, node %d %v", m.id, slices.Sorted(mapKeys(got)), ref.id, slices.Sorted(mapKeys(want)))
		}
		for name, b := range want {
			if !bytes.Equal(got[name], b) {
				t.Fatalf("node %d: ledger file %s differs from node %d's", m.id, name, ref.id)
			}
		}
	}
	last := ref.r.Status().LastIndex
	stored := readEncoded(t, ref.l, 1, last)
	for seqno, b := range nw.committed {
		if !bytes.Equal(stored[seqno], b) {
			t.Fatalf("entry %d, reported committed, is lost or changed", seqno)
		}
	}
}

func (nw *net) converged() bool {
	var last uint64
	for i, m := range nw.live() {
		st := m.r.Status()
		if i == 0 {
			last = st.LastIndex
		}
		if st.LastIndex != last || st.Commit != last || m.reported != last || m.r.HasReady() {
			return false
		}
		if l, err := m.s.LastIndex(); err != nil || l != last {
			return false
		}
	}
	return true
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (nw *net) close() {
	for _, m := range nw.members {
		if !m.down {
			_ = m.tr.Close()
			closeLedger(nw.t, m.l)
		}
	}
}

func TestReplicaSingleNode(t *testing.T) {
	nw := newNet(t, 1, 1, 2048)
	defer nw.close()
	m := nw.members[0]
	if st := m.r.Status(); st.Role != raft.StateFollower || st.Applied != 1 || st.LastIndex != 1 || st.Primary {
		t.Fatalf("at start: %+v", st)
	}
	if err := m.r.Campaign(); err != nil {
		t.Fatal(err)
	}
	// Raft delivers the replica's vote for itself in Advance: it becomes
	// leader there and its empty entry (index 2) comes in the next Ready.
	// Until that Ready is processed the tracked last index is 1, so
	// Propose must refuse rather than misnumber.
	for i := 0; m.r.Status().Role != raft.StateLeader; i++ {
		if i == 10 {
			t.Fatal("single replica does not become leader")
		}
		if err := m.r.ProcessReady(); err != nil {
			t.Fatal(err)
		}
	}
	if st := m.r.Status(); st.Primary || st.LastIndex != 1 {
		t.Fatalf("leader before processing its election's Ready: %+v; want not yet primary, last index 1", st)
	}
	e, _ := nextEntry(nw.rng, 2, 2)
	if err := m.r.Propose(e); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Propose before the election's Ready is processed: %v", err)
	}
	nw.round(false)
	st := m.r.Status()
	if !st.Primary || st.Term != 2 || st.LastIndex != 2 || st.Commit != 2 || st.Leader != 1 {
		t.Fatalf("after Campaign: %+v; want primary at term 2, last index 2 (bootstrap, empty entry)", st)
	}
	if !slices.Equal(m.roles, []string{"leader@2"}) {
		t.Fatalf("role changes %v", m.roles)
	}
	proposed := map[uint64][]byte{}
	for round := range 8 {
		for k, v := range nw.propose(m, round+1) {
			proposed[k] = v
		}
		nw.round(false)
	}
	last := m.r.Status().LastIndex
	if last != 2+36 || m.reported != last {
		t.Fatalf("last index %d, reported commit %d; want both %d", last, m.reported, 2+36)
	}
	if len(m.commits) == 0 || m.commits[0] != 2 || len(slices.Compact(slices.Clone(m.commits))) != len(m.commits) || !slices.IsSorted(m.commits) {
		t.Fatalf("OnCommit values %v", m.commits)
	}
	stored := readEncoded(t, m.l, 1, last)
	for seqno, data := range proposed {
		if !bytes.Equal(stored[seqno], data) {
			t.Fatalf("entry %d reads back other bytes than proposed", seqno)
		}
	}
}

// TestReplicaProposeRefused checks the typed refusals: a wrong seqno, a
// wrong view, a follower, an entry raft writes itself, an invalid entry.
func TestReplicaProposeRefused(t *testing.T) {
	nw := newNet(t, 2, 3, 4096)
	defer nw.close()
	p := nw.primary(nil, 0)
	st := p.r.Status()
	next := st.LastIndex + 1

	for _, seqno := range []uint64{next - 1, next + 1, 1} {
		e, _ := nextEntry(nw.rng, st.Term, seqno)
		err := p.r.Propose(e)
		var se *StaleSeqnoError
		if !errors.As(err, &se) || !errors.Is(err, ErrStaleSeqno) || se.Seqno != seqno || se.Want != next {
			t.Fatalf("Propose at seqno %d (next %d): %v", seqno, next, err)
		}
	}
	e, _ := nextEntry(nw.rng, st.Term+1, next)
	err := p.r.Propose(e)
	var npe *NotPrimaryError
	if !errors.As(err, &npe) || !errors.Is(err, ErrNotPrimary) || npe.View != st.Term+1 || npe.Term != st.Term || npe.Leader != p.id {
		t.Fatalf("Propose of view %d at term %d: %v", st.Term+1, st.Term, err)
	}
	for _, m := range nw.members {
		if m == p {
			continue
		}
		fst := m.r.Status()
		if fst.Primary || fst.Role != raft.StateFollower || fst.Leader != p.id || fst.Term != st.Term {
			t.Fatalf("follower %d: %+v", m.id, fst)
		}
		e, _ := nextEntry(nw.rng, st.Term, next)
		err := m.r.Propose(e)
		if !errors.As(err, &npe) || !errors.Is(err, ErrNotPrimary) || npe.Leader != p.id || npe.Term != st.Term {
			t.Fatalf("Propose on follower %d: %v", m.id, err)
		}
	}
	raftEntry := &ledger.Entry{Kind: ledger.KindRaft, View: ids.View(st.Term), Seqno: ids.Seqno(next), Public: []byte{ledger.RaftEmpty}}
	if err := p.r.Propose(raftEntry); !errors.Is(err, ErrBadEntry) {
		t.Fatalf("Propose of a KindRaft entry: %v", err)
	}
	bad := &ledger.Entry{Kind: ledger.KindTx, View: 0, Seqno: ids.Seqno(next)}
	if err := p.r.Propose(bad); !errors.Is(err, ErrBadEntry) {
		t.Fatalf("Propose of an invalid entry: %v", err)
	}
	// None of it reached the log: the right proposal still fits.
	nw.propose(p, 1)
	nw.round(false)
	if got := p.r.Status(); got.Commit != next || got.LastIndex != next {
		t.Fatalf("after one good proposal: %+v; want commit and last index %d", got, next)
	}
	if _, err := NewReplica(ReplicaConfig{ID: 0, Storage: p.s, Transport: p.tr}); !errors.Is(err, ErrReplicaConfig) {
		t.Fatalf("NewReplica with id 0: %v", err)
	}
}

// TestReplicaProposalsBatchAndDropWithLeadership checks the proposal
// batch: entries admitted by Propose reach raft together at the next
// ProcessReady, unless leadership was lost meanwhile, in which case they
// are dropped, the last index goes back, and the Ready reports the change
// of role. Proposals from the network never reach the log.
func TestReplicaProposalsBatchAndDropWithLeadership(t *testing.T) {
	nw := newNet(t, 5, 3, 4096)
	defer nw.close()
	p := nw.primary(nil, 0)
	st := p.r.Status()

	nw.propose(p, 3)
	if !p.r.HasReady() {
		t.Fatal("HasReady is false with three proposals pending")
	}
	// A higher term reaches the primary before its loop hands the batch
	// to raft: it becomes a follower, and the batch must not follow it.
	var other uint64 = 1
	if p.id == other {
		other = 2
	}
	p.r.Step(context.Background(), []raftpb.Message{{Type: raftpb.MsgHeartbeat, From: other, To: p.id, Term: st.Term + 1}})
	if err := p.r.ProcessReady(); err != nil {
		t.Fatal(err)
	}
	got := p.r.Status()
	if got.Primary || got.LastIndex != st.LastIndex || got.Term != st.Term+1 {
		t.Fatalf("after losing leadership with 3 proposals pending: %+v; want a follower at term %d with last index %d", got, st.Term+1, st.LastIndex)
	}
	if li, _ := p.s.LastIndex(); li != st.LastIndex {
		t.Fatalf("storage last index %d; want %d: the dropped batch must not be written", li, st.LastIndex)
	}
	if n := len(p.roles); n == 0 || p.roles[n-1] != fmt.Sprintf("follower@%d", st.Term+1) {
		t.Fatalf("roles reported %v; want the change to follower@%d", p.roles, st.Term+1)
	}
	nw.converge()

	// The next primary ignores a proposal that comes over the network.
	q := nw.primary(nil, st.Term)
	qst := q.r.Status()
	var from uint64
	for _, m := range nw.members {
		if m != q {
			from = m.id
		}
	}
	q.r.Step(context.Background(), []raftpb.Message{{Type: raftpb.MsgProp, From: from, To: q.id, Entries: []raftpb.Entry{{Data: []byte("forged")}}}})
	for q.r.HasReady() {
		if err := q.r.ProcessReady(); err != nil {
			t.Fatal(err)
		}
	}
	if got := q.r.Status().LastIndex; got != qst.LastIndex {
		t.Fatalf("primary's last index %d after a proposal from the network; want %d", got, qst.LastIndex)
	}
	// Batching keeps seqnos and indices one counter.
	nw.propose(q, 5)
	nw.converge()
}

// TestReplicaThreeNodes elects a leader among three replicas, commits 200
// proposals on all of them, restarts a follower that missed 40 more from
// a crash image of its disk, and checks it catches up and that all
// ledger directories are byte-identical.
func TestReplicaThreeNodes(t *testing.T) {
	nw := newNet(t, 3, 3, 4096)
	defer nw.close()
	p := nw.primary(nil, 0)
	for range 10 {
		nw.propose(p, 20)
		nw.round(false)
	}
	st := p.r.Status()
	if st.LastIndex != 3+1+200 {
		t.Fatalf("leader's last index %d, want 204 (3 bootstrap, the empty entry, 200 proposals)", st.LastIndex)
	}
	nw.converge()
	if n := len(files(t, p.fsys, ledgerDir(p.dir))); n < 4 {
		t.Fatalf("%d ledger files; the test wants chunks to rotate", n)
	}

	// A follower misses 40 entries, crashes, restarts from its disk's
	// crash image and catches up.
	var f *member
	for _, m := range nw.members {
		if m != p {
			f = m
		}
	}
	nw.mem.Isolate(f.id)
	for range 4 {
		nw.propose(p, 10)
		nw.round(false)
	}
	if got := f.r.Status().LastIndex; got != st.LastIndex {
		t.Fatalf("isolated follower's last index %d, want %d", got, st.LastIndex)
	}
	// The follower's HardState file holds its latest term and vote and
	// the commit index as of their last change, the election: 3 (the
	// bootstrap entries) or 4 (with the leader's empty entry). The commit
	// index alone was not written since (fewer than CommitSaveInterval
	// entries), so the saved one lags the latest.
	latest, saved := f.s.HardState(), savedState(t, f.fsys, f.dir)
	if latest.Term != st.Term || latest.Commit != st.LastIndex || saved.Term != latest.Term || saved.Vote != latest.Vote || saved.Commit < 3 || saved.Commit > 4 {
		t.Fatalf("follower's HardState: latest %+v, saved %+v; want the latest at term %d, commit %d, and the saved one with its term and vote and commit 3 or 4", latest, saved, st.Term, st.LastIndex)
	}
	_ = f.tr.Close()
	closeLedger(t, f.l)
	f.fsys = f.fsys.Crash(seeded(33))
	nw.start(f)
	if hs, _, err := f.s.InitialState(); err != nil || hs != saved || f.reported != saved.Commit {
		t.Fatalf("restarted follower: HardState %+v, %v, applied at %d; want %+v, applied at %d", hs, err, f.reported, saved, saved.Commit)
	}
	nw.mem.Heal()
	nw.converge()
	if got := p.r.Status().LastIndex; got != st.LastIndex+40 {
		t.Fatalf("last index %d, want %d", got, st.LastIndex+40)
	}
	if p.r.Status().Term != st.Term {
		t.Fatalf("term changed from %d to %d: the restart disturbed the leader", st.Term, p.r.Status().Term)
	}
	// Raft handed the restarted follower every entry committed after its
	// saved commit index again, in order (OnCommit grows), and it applied
	// each with the bytes it had applied before the crash (onCommit checks).
	if want := int(st.LastIndex - saved.Commit); f.reapplied != want || f.reported != st.LastIndex+40 {
		t.Fatalf("restarted follower re-applied %d entries and reported %d; want %d re-applied, %d reported", f.reapplied, f.reported, want, st.LastIndex+40)
	}

	// The other follower stops cleanly: SaveHardState writes its latest
	// HardState, and it restarts from it exactly, applying nothing twice.
	var g *member
	for _, m := range nw.members {
		if m != p && m != f {
			g = m
		}
	}
	latest = g.s.HardState()
	if latest.Commit != st.LastIndex+40 || savedState(t, g.fsys, g.dir) == latest {
		t.Fatalf("follower %d: latest HardState %+v, saved %+v; want commit %d, saved lagging", g.id, latest, savedState(t, g.fsys, g.dir), st.LastIndex+40)
	}
	if err := g.s.SaveHardState(); err != nil {
		t.Fatal(err)
	}
	if got := savedState(t, g.fsys, g.dir); got != latest {
		t.Fatalf("after SaveHardState the file holds %+v; want %+v", got, latest)
	}
	_ = g.tr.Close()
	closeLedger(t, g.l)
	nw.start(g)
	if hs, _, err := g.s.InitialState(); err != nil || hs != latest || g.reported != latest.Commit {
		t.Fatalf("cleanly restarted follower: HardState %+v, %v, applied at %d; want %+v", hs, err, g.reported, latest)
	}
	nw.propose(p, 5)
	nw.converge()
	if g.reapplied != 0 || g.reported != st.LastIndex+45 {
		t.Fatalf("cleanly restarted follower re-applied %d entries and reported %d; want 0, %d", g.reapplied, g.reported, st.LastIndex+45)
	}
}

// TestReplicaPartition cuts the leader and one follower off from the
// three other replicas, over several seeds (drops, payloads, and raft's
// own election randomness differ): the minority cannot commit, the
// majority elects a leader of a later term and commits; after healing
// the old leader's uncommitted suffix is replaced, ledgers converge
// byte-identical, and no entry OnCommit reported is lost. net checks at
// every round that no two replicas lead one term.
func TestReplicaPartition(t *testing.T) {
	seeds := 20
	if testing.Short() {
		seeds = 4
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { partitionScenario(t, 100+seed) })
	}
}

func partitionScenario(t *testing.T, seed uint64) {
	nw := newNet(t, seed, 5, 2048)
	defer nw.close()
	if seed%2 == 1 {
		nw.mem.DropRate(0.05)
	}
	old := nw.primary(nil, 0)
	for range 3 {
		nw.propose(old, 10)
		nw.round(true)
	}
	nw.mem.DropRate(0)
	nw.converge() // every replica holds, and has committed, the prefix
	base := old.r.Status()

	var minority, majority []uint64
	minority = append(minority, old.id)
	for _, m := range nw.members {
		if m != old && len(minority) < 2 {
			minority = append(minority, m.id)
		} else if m != old {
			majority = append(majority, m.id)
		}
	}
	nw.mem.Partition(minority, majority)
	if seed%2 == 1 {
		nw.mem.DropRate(0.05)
	}
	lost := nw.propose(old, 7)
	nw.round(false)
	if got := old.r.Status(); got.Commit != base.Commit || got.LastIndex != base.LastIndex+7 {
		t.Fatalf("minority leader: %+v; want commit %d, last index %d", got, base.Commit, base.LastIndex+7)
	}
	nw.round(true)

	p := nw.primary(majority, base.Term)
	for range 3 {
		nw.propose(p, 5)
		nw.round(true)
	}
	for range 2 * DefaultElectionTicks {
		nw.round(true) // CheckQuorum: the old leader steps down
	}
	for _, id := range minority {
		m := nw.members[id-1]
		if got := m.r.Status(); got.Commit > base.LastIndex || got.Role == raft.StateLeader {
			t.Fatalf("minority node %d: %+v; want commit ≤ %d and not leader", id, got, base.LastIndex)
		}
	}
	if r := old.roles; len(r) < 2 || r[len(r)-2] != fmt.Sprintf("leader@%d", base.Term) || r[len(r)-1] != fmt.Sprintf("follower@%d", base.Term) {
		t.Fatalf("old leader's role changes %v; want it to step down in term %d (CheckQuorum)", r, base.Term)
	}
	for seqno, data := range lost {
		if b, ok := nw.committed[seqno]; ok && bytes.Equal(b, data) {
			t.Fatalf("minority entry %d reported committed", seqno)
		}
	}
	if got := nw.readAll(old); !bytes.Equal(got[base.LastIndex+7], lost[base.LastIndex+7]) {
		t.Fatal("old leader does not hold its uncommitted suffix before healing")
	}

	nw.mem.Heal()
	nw.mem.DropRate(0)
	nw.converge()
	final := nw.readAll(old)
	for seqno, data := range lost {
		if bytes.Equal(final[seqno], data) {
			t.Fatalf("old leader's uncommitted entry %d survived", seqno)
		}
	}
	if st := p.r.Status(); st.Term <= base.Term || st.LastIndex < base.LastIndex+1+15 {
		t.Fatalf("after healing: %+v; want term > %d and at least %d entries", st, base.Term, base.LastIndex+16)
	}
	t.Logf("base %+v; terms %d → %d, leaders %v, last index %d, old leader's roles %v", base, base.Term, p.r.Status().Term, nw.leaders, p.r.Status().LastIndex, old.roles)
}

// readAll returns m's whole log as ledger bytes by seqno.
func (nw *net) readAll(m *member) map[uint64][]byte {
	return readEncoded(nw.t, m.l, 1, m.r.Status().LastIndex)
}

// TestReplicaSignOnElectionAndFailure has the new leader propose a
// signature from inside OnRoleChange (the callbacks run without the lock,
// and the election's empty entry is already counted), then fails the disk:
// the replica fails for good with ErrReplicaFailed wrapping the Storage's
// ErrFailed, and refuses further work.
func TestReplicaSignOnElectionAndFailure(t *testing.T) {
	nw := newNet(t, 4, 1, 2048)
	defer nw.close()
	m := nw.members[0]
	nw.onLeader = func(m *member, term uint64) {
		st := m.r.Status()
		e := &ledger.Entry{Kind: ledger.KindSignature, View: ids.View(term), Seqno: ids.Seqno(st.LastIndex + 1), Public: []byte("sig")}
		if err := m.r.Propose(e); err != nil {
			t.Errorf("Propose from OnRoleChange: %v", err)
		}
	}
	if err := m.r.Campaign(); err != nil {
		t.Fatal(err)
	}
	nw.round(false)
	if st := m.r.Status(); st.LastIndex != 3 || st.Commit != 3 || m.reported != 3 {
		t.Fatalf("after election: %+v, reported %d; want the signature at 3 committed", st, m.reported)
	}
	if e, err := m.l.Read(3); err != nil || e.Kind != ledger.KindSignature {
		t.Fatalf("entry 3: %+v, %v", e, err)
	}

	nw.propose(m, 1)
	m.fsys.FailSyncsAfter(0, errors.New("disk on fire"))
	err := m.r.ProcessReady()
	if !errors.Is(err, ErrReplicaFailed) || !errors.Is(err, ErrFailed) {
		t.Fatalf("ProcessReady with a failing disk: %v", err)
	}
	m.fsys.ClearFaults()
	e, _ := nextEntry(nw.rng, 2, 5)
	if err := m.r.Propose(e); !errors.Is(err, ErrReplicaFailed) {
		t.Fatalf("Propose after failure: %v", err)
	}
	if err := m.r.ProcessReady(); !errors.Is(err, ErrReplicaFailed) {
		t.Fatalf("ProcessReady after failure: %v", err)
	}
	if err := m.r.Campaign(); !errors.Is(err, ErrReplicaFailed) || !errors.Is(m.r.Err(), ErrReplicaFailed) || m.r.HasReady() {
		t.Fatalf("Campaign after failure: %v", err)
	}
	m.r.Tick() // ignored, no panic
	if m.reported != 3 {
		t.Fatalf("the failed proposal was reported committed (%d)", m.reported)
	}
	m.down = true // its ledger is poisoned: close skips it
}

// persistLog records, in order, what a member writes and sends while its
// ProcessReady runs: "sync ledger" (an fsync of a ledger file), "sync
// state" (the fsync of the HardState file's new content,
// vfs.WriteFileAtomic's temporary file) and "send <type> to <id>". check,
// if set, runs at every send, with the message.
type persistLog struct {
	events []string
	check  func(raftpb.Message)
}

// watch installs l's hooks on m (uninstall removes them).
func (l *persistLog) watch(m *member) {
	state := filepath.Join(m.dir, StateFileName) + ".tmp"
	sync := func(name string) {
		switch {
		case strings.HasPrefix(name, ledgerDir(m.dir)+"/"):
			l.events = append(l.events, "sync ledger")
		case name == state:
			l.events = append(l.events, "sync state")
		default:
			l.events = append(l.events, "sync "+name)
		}
	}
	send := func(msgs []raftpb.Message) {
		for _, msg := range msgs {
			l.events = append(l.events, fmt.Sprintf("send %v to %d", msg.Type, msg.To))
			if l.check != nil {
				l.check(msg)
			}
		}
	}
	m.syncHook.Store(&sync)
	m.sendHook.Store(&send)
}

func uninstall(m *member) {
	m.syncHook.Store(nil)
	m.sendHook.Store(nil)
}

// processWatched runs one ProcessReady of m with a fresh persistLog and
// returns its events.
func processWatched(t *testing.T, m *member, check func(raftpb.Message)) []string {
	t.Helper()
	l := &persistLog{check: check}
	l.watch(m)
	defer uninstall(m)
	if err := m.r.ProcessReady(); err != nil {
		t.Fatalf("node %d: ProcessReady: %v", m.id, err)
	}
	return l.events
}

// TestReplicaPersistOrder checks the order in which a Ready's writes and
// messages happen (Replica.persist): a leader hands its appends to the
// transport before the fsync of the same entries starts, so the
// followers' writes overlap its own; a follower acknowledges entries
// (MsgAppResp) only once they are durable; and a Ready that changes the
// term or the vote — a campaign, a vote — writes the HardState file before
// it sends anything, its MsgVote or MsgVoteResp included.
func TestReplicaPersistOrder(t *testing.T) {
	t.Run("append", func(t *testing.T) {
		nw := newNet(t, 6, 3, 4096)
		defer nw.close()
		p := nw.primary(nil, 0)
		nw.converge()
		st := p.r.Status()
		nw.propose(p, 3)
		last := st.LastIndex + 3

		// The leader: raft sends an MsgApp to each follower per proposal.
		// All of them, carrying the new entries, are queued in the
		// transport when the ledger fsync of those entries starts, and the
		// Storage had not appended the entries when they were sent.
		queuedAtSync := -1
		sentUpTo := map[uint64]uint64{} // follower → last index sent to it
		var appendedAtSend []uint64
		l := &persistLog{check: func(m raftpb.Message) {
			if m.Type != raftpb.MsgApp {
				return
			}
			if n := len(m.Entries); n > 0 {
				sentUpTo[m.To] = max(sentUpTo[m.To], m.Entries[n-1].Index)
			}
			li, _ := p.s.LastIndex()
			appendedAtSend = append(appendedAtSend, li)
		}}
		l.watch(p)
		sync := p.syncHook.Load()
		syncAndCount := func(name string) {
			if queuedAtSync < 0 && strings.HasPrefix(name, ledgerDir(p.dir)+"/") {
				queuedAtSync = nw.mem.Pending()
			}
			(*sync)(name)
		}
		p.syncHook.Store(&syncAndCount)
		if err := p.r.ProcessReady(); err != nil {
			t.Fatal(err)
		}
		uninstall(p)
		n := len(l.events)
		if n != 3 || l.events[n-1] != "sync ledger" {
			t.Fatalf("leader's Ready: %q; want 2 MsgApps (the 3 proposals together, to each of 2 followers), then the ledger fsync, and no HardState write", l.events)
		}
		var followers []*member
		for _, m := range nw.members {
			if m != p {
				followers = append(followers, m)
			}
		}
		for _, e := range l.events[:n-1] {
			if e != fmt.Sprintf("send MsgApp to %d", followers[0].id) && e != fmt.Sprintf("send MsgApp to %d", followers[1].id) {
				t.Fatalf("leader's Ready: %q; want only MsgApps to the followers before the ledger fsync", l.events)
			}
		}
		if len(sentUpTo) != 2 || sentUpTo[followers[0].id] != last || sentUpTo[followers[1].id] != last {
			t.Fatalf("leader sent entries up to %v; want up to %d to both followers", sentUpTo, last)
		}
		if queuedAtSync != 2 || slices.ContainsFunc(appendedAtSend, func(li uint64) bool { return li != st.LastIndex }) {
			t.Fatalf("at the ledger fsync %d messages were queued (want the 2 MsgApps); at the sends the Storage's last index was %v (want %d: not yet appended)", queuedAtSync, appendedAtSend, st.LastIndex)
		}
		if li, _ := p.s.LastIndex(); li != last || p.r.Status().Commit != st.LastIndex {
			t.Fatalf("leader after its Ready: last index %d, commit %d; want %d, %d (committed only once a follower acknowledges)", li, p.r.Status().Commit, last, st.LastIndex)
		}

		// A follower: it got the three entries in one MsgApp and answers
		// with an MsgAppResp after the ledger fsync, when the entries it
		// acknowledges are durable.
		nw.mem.Deliver()
		for _, f := range followers {
			var acked uint64
			events := processWatched(t, f, func(m raftpb.Message) {
				if m.Type != raftpb.MsgAppResp {
					return
				}
				acked = max(acked, m.Index)
				li, _ := f.s.LastIndex()
				if m.Reject || m.Index > li || uint64(f.l.DurableSeqno()) < m.Index {
					t.Errorf("follower %d sends %+v with its log durable up to %d (ledger %d)", f.id, m, li, f.l.DurableSeqno())
				}
			})
			resp := fmt.Sprintf("send MsgAppResp to %d", p.id)
			if want := []string{"sync ledger", resp}; !slices.Equal(events, want) || acked != last {
				t.Fatalf("follower %d's Ready: %q, acknowledging up to %d; want %q, up to %d", f.id, events, acked, want, last)
			}
		}
		nw.round(false)
		if got := p.r.Status(); got.Commit != last || p.reported != last {
			t.Fatalf("leader after the acknowledgements: %+v, reported %d; want %d committed", got, p.reported, last)
		}
		nw.converge()
	})

	t.Run("campaign", func(t *testing.T) {
		nw := newNet(t, 7, 3, 4096)
		defer nw.close()
		nw.round(false) // nothing ticks: no election yet
		c := nw.members[0]
		voters := nw.members[1:]
		st := c.r.Status()
		if st.Term != 1 || st.Role != raft.StateFollower {
			t.Fatalf("before the campaign: %+v", st)
		}
		// checkSaved fails a message sent by m before its HardState file
		// holds term and vote.
		checkSaved := func(m *member, term, vote uint64) func(raftpb.Message) {
			return func(msg raftpb.Message) {
				if hs := savedState(t, m.fsys, m.dir); hs.Term != term || hs.Vote != vote {
					t.Errorf("node %d sends %v at term %d while its HardState file holds %+v; want term %d, vote %d written first", m.id, msg.Type, msg.Term, hs, term, vote)
				}
			}
		}
		if err := c.r.Campaign(); err != nil {
			t.Fatal(err)
		}
		// The pre-vote changes no term or vote: nothing is written.
		events := processWatched(t, c, checkSaved(c, 1, 0))
		if want := []string{"send MsgPreVote to 2", "send MsgPreVote to 3"}; !slices.Equal(events, want) {
			t.Fatalf("pre-candidate's Ready: %q; want %q", events, want)
		}
		nw.mem.Deliver()
		for _, v := range voters {
			events := processWatched(t, v, checkSaved(v, 1, 0))
			if want := []string{fmt.Sprintf("send MsgPreVoteResp to %d", c.id)}; !slices.Equal(events, want) {
				t.Fatalf("node %d's pre-vote Ready: %q; want %q", v.id, events, want)
			}
		}
		nw.mem.Deliver()
		// The candidate's Ready changes term and vote: the HardState file
		// is written before the MsgVotes go out.
		events = processWatched(t, c, checkSaved(c, 2, c.id))
		if want := []string{"sync state", "send MsgVote to 2", "send MsgVote to 3"}; !slices.Equal(events, want) {
			t.Fatalf("candidate's Ready: %q; want %q", events, want)
		}
		nw.mem.Deliver()
		// So does each voter's: it writes its vote, then grants it.
		for _, v := range voters {
			events := processWatched(t, v, checkSaved(v, 2, c.id))
			if want := []string{"sync state", fmt.Sprintf("send MsgVoteResp to %d", c.id)}; !slices.Equal(events, want) {
				t.Fatalf("node %d's vote Ready: %q; want %q", v.id, events, want)
			}
		}
		nw.round(false)
		if st := c.r.Status(); !st.Primary || st.Term != 2 {
			t.Fatalf("after the election: %+v; want primary at term 2", st)
		}
		nw.converge()
	})
}
