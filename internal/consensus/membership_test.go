package consensus

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/transport"
	"github.com/cocoledger/coco/internal/vfs"
)

func TestMembershipCheckRemoval(t *testing.T) {
	active := func(ids ...uint64) map[uint64]PeerProgress {
		p := map[uint64]PeerProgress{}
		for _, id := range ids {
			p[id] = PeerProgress{Match: 10, RecentActive: true}
		}
		return p
	}
	with := func(p map[uint64]PeerProgress, inactive ...uint64) map[uint64]PeerProgress {
		for _, id := range inactive {
			p[id] = PeerProgress{Match: 3}
		}
		return p
	}
	for _, tc := range []struct {
		name string
		m    Membership
		id   uint64
		ok   bool
	}{
		{"a learner", Membership{Voters: []uint64{1}, Learners: []uint64{2}}, 2, true},
		{"not a member", Membership{Voters: []uint64{1, 2, 3}, Progress: active(1, 2, 3)}, 4, false},
		{"the last voter", Membership{Voters: []uint64{1}, Learners: []uint64{2}, Progress: active(1, 2)}, 1, false},
		{"a voter, no progress (not the leader)", Membership{Voters: []uint64{1, 2, 3}}, 3, false},
		{"one of three, all active", Membership{Voters: []uint64{1, 2, 3}, Progress: active(1, 2, 3)}, 3, true},
		{"one of two, the other active", Membership{Voters: []uint64{1, 2}, Progress: active(1, 2)}, 2, true},
		{"one of three, another inactive", Membership{Voters: []uint64{1, 2, 3}, Progress: with(active(1, 2), 3)}, 2, false},
		{"the inactive one of three", Membership{Voters: []uint64{1, 2, 3}, Progress: with(active(1, 2), 3)}, 3, true},
		{"one of three, another without progress", Membership{Voters: []uint64{1, 2, 3}, Progress: active(1, 2)}, 1, false},
		{"one of five, one other inactive", Membership{Voters: []uint64{1, 2, 3, 4, 5}, Progress: with(active(1, 2, 3, 4), 5)}, 4, true},
		{"one of five, two others inactive", Membership{Voters: []uint64{1, 2, 3, 4, 5}, Progress: with(active(1, 2, 3), 4, 5)}, 3, false},
		{"an inactive one of five, another inactive", Membership{Voters: []uint64{1, 2, 3, 4, 5}, Progress: with(active(1, 2, 3), 4, 5)}, 5, true},
		{"one of four, two others inactive, learners active", Membership{Voters: []uint64{1, 2, 3, 4}, Learners: []uint64{5, 6}, Progress: with(active(1, 4, 5, 6), 2, 3)}, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.CheckRemoval(tc.id)
			if tc.ok {
				if err != nil {
					t.Fatalf("CheckRemoval(%d) of %+v: %v", tc.id, tc.m, err)
				}
				return
			}
			var re *RemovalError
			if !errors.Is(err, ErrRemovalRefused) || !errors.As(err, &re) || re.ID != tc.id || re.Reason == "" {
				t.Fatalf("CheckRemoval(%d) of %+v: %v; want a *RemovalError", tc.id, tc.m, err)
			}
			t.Log(err)
		})
	}
}

func TestMembershipCaughtUpLearners(t *testing.T) {
	m := Membership{
		Voters:   []uint64{1, 2},
		Learners: []uint64{3, 4, 5, 6},
		Progress: map[uint64]PeerProgress{1: {Match: 12}, 2: {Match: 9}, 3: {Match: 10}, 4: {Match: 9}, 6: {Match: 11}},
	}
	for _, tc := range []struct {
		commit uint64
		want   []uint64
	}{{0, []uint64{3, 4, 6}}, {9, []uint64{3, 4, 6}}, {10, []uint64{3, 6}}, {11, []uint64{6}}, {12, nil}} {
		if got := m.CaughtUpLearners(tc.commit); !slices.Equal(got, tc.want) {
			t.Errorf("CaughtUpLearners(%d) = %v, want %v", tc.commit, got, tc.want)
		}
	}
	m.Progress = nil
	if got := m.CaughtUpLearners(0); got != nil {
		t.Errorf("CaughtUpLearners without progress = %v, want none", got)
	}
}

func confChange(typ raftpb.ConfChangeType, id uint64) raftpb.ConfChangeV2 {
	return raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: typ, NodeID: id}}}
}

// confChange has m, the primary, propose cc at its next index and runs a
// round; the change must then be committed and applied by m, and be the
// ledger entry at that index on m.
func (nw *net) confChange(m *member, cc raftpb.ConfChangeV2) {
	t := nw.t
	t.Helper()
	index := m.r.Status().LastIndex + 1
	if err := m.r.ProposeConfChange(index, cc); err != nil {
		t.Fatalf("node %d: ProposeConfChange(%d, %v): %v", m.id, index, cc, err)
	}
	if got := m.r.Status().LastIndex; got != index {
		t.Fatalf("node %d: last index %d after a configuration change at %d", m.id, got, index)
	}
	nw.round(false)
	if st := m.r.Status(); st.Commit != index || m.reported != index {
		t.Fatalf("node %d: %+v, reported %d; want the change at %d committed", m.id, st, m.reported, index)
	}
	e, err := m.l.Read(ids.Seqno(index))
	if err != nil || e.Kind != ledger.KindRaft || e.Public[0] != ledger.RaftConfChangeV2 {
		t.Fatalf("node %d: entry %d is %+v, %v; want a configuration change", m.id, index, e, err)
	}
}

// join starts node id with an empty Storage (no Bootstrap) and makes it a
// peer of every live node's transport, and they of its.
func (nw *net) join(id uint64) *member {
	nw.t.Helper()
	nw.peers = append(nw.peers, transport.Peer{ID: id})
	for _, m := range nw.live() {
		m.tr.SetPeers(nw.peers)
	}
	m := &member{id: id, fsys: vfs.NewMem(), dir: fmt.Sprintf("/node%d", id)}
	nw.members = append(nw.members, m)
	nw.start(m)
	return m
}

// stop shuts m down (transport and ledger closed): converge and round
// leave it out.
func (nw *net) stop(m *member) {
	_ = m.tr.Close()
	closeLedger(nw.t, m.l)
	m.down = true
}

func checkMembers(t *testing.T, m *member, voters, learners []uint64) Membership {
	t.Helper()
	mb := m.r.Membership()
	if !slices.Equal(mb.Voters, voters) || !slices.Equal(mb.Learners, learners) {
		t.Fatalf("node %d: membership %+v; want voters %v, learners %v", m.id, mb, voters, learners)
	}
	leader := m.r.Status().Role == raft.StateLeader
	if leader != (mb.Progress != nil) {
		t.Fatalf("node %d (leader %v): progress %v", m.id, leader, mb.Progress)
	}
	if !leader {
		return mb
	}
	members := append(slices.Clone(voters), learners...)
	if len(mb.Progress) != len(members) {
		t.Fatalf("node %d: progress %v; want members %v", m.id, mb.Progress, members)
	}
	for _, id := range members {
		if _, ok := mb.Progress[id]; !ok {
			t.Fatalf("node %d: no progress of member %d: %v", m.id, id, mb.Progress)
		}
	}
	if !mb.Progress[m.id].RecentActive {
		t.Fatalf("leader %d not recently active itself", m.id)
	}
	return mb
}

// TestReplicaMembershipChanges grows a three-voter network by a fourth
// node, which joins with an empty Storage: added as a learner while cut
// off (not caught up), caught up from index 1 once healed, promoted to
// voter. Then a founding voter is removed and shut down, and another is
// cut off: commits go on with two of the three remaining voters, which
// they could not if the removed one still counted. Once the leader's
// quorum check has marked the cut-off voter inactive, CheckRemoval
// refuses removing either active voter but accepts removing the inactive
// one, which then restores a fully working configuration.
func TestReplicaMembershipChanges(t *testing.T) {
	nw := newNet(t, 7, 3, 4096)
	defer nw.close()
	p := nw.primary(nil, 0)
	for range 3 {
		nw.propose(p, 10)
		nw.round(false)
	}
	nw.converge()
	checkMembers(t, p, []uint64{1, 2, 3}, nil)

	n4 := nw.join(4)
	nw.mem.Isolate(4)
	nw.confChange(p, confChange(raftpb.ConfChangeAddLearnerNode, 4))
	mb := checkMembers(t, p, []uint64{1, 2, 3}, []uint64{4})
	commit := p.r.Status().Commit
	if pr := mb.Progress[4]; pr.Match != 0 || len(mb.CaughtUpLearners(commit)) != 0 {
		t.Fatalf("cut-off learner: %+v, caught up %v", pr, mb.CaughtUpLearners(commit))
	}
	nw.mem.Heal()
	nw.converge() // node 4 now holds the whole log, from index 1
	mb = checkMembers(t, p, []uint64{1, 2, 3}, []uint64{4})
	if got := mb.CaughtUpLearners(p.r.Status().Commit); !slices.Equal(got, []uint64{4}) {
		t.Fatalf("caught-up learners %v, want [4]; progress %v", got, mb.Progress)
	}
	// Node 4 learnt the founders from the bootstrap entries at 1…3.
	checkMembers(t, n4, []uint64{1, 2, 3}, []uint64{4})

	nw.confChange(p, confChange(raftpb.ConfChangeAddNode, 4))
	nw.converge()
	checkMembers(t, p, []uint64{1, 2, 3, 4}, nil)
	checkMembers(t, n4, []uint64{1, 2, 3, 4}, nil)

	var founders []*member // the founding voters other than the leader
	for _, m := range nw.members[:3] {
		if m != p {
			founders = append(founders, m)
		}
	}
	gone, cut := founders[0], founders[1]
	if err := p.r.Membership().CheckRemoval(gone.id); err != nil {
		t.Fatalf("CheckRemoval(%d) with every voter active: %v", gone.id, err)
	}
	nw.confChange(p, confChange(raftpb.ConfChangeRemoveNode, gone.id))
	nw.stop(gone)
	remaining := slices.Sorted(slices.Values([]uint64{p.id, cut.id, 4}))
	mb = checkMembers(t, p, remaining, nil)

	// With cut off too, only the leader and node 4 answer: a quorum
	// of three voters, not of four.
	nw.mem.Isolate(cut.id)
	nw.propose(p, 5)
	nw.round(false)
	if st := p.r.Status(); st.Commit != st.LastIndex || !st.Primary {
		t.Fatalf("leader with two of three voters: %+v; want everything committed", st)
	}
	for range 2 * DefaultElectionTicks {
		nw.round(true) // the leader's quorum checks find cut inactive
	}
	if st := p.r.Status(); !st.Primary || st.Commit != st.LastIndex {
		t.Fatalf("leader after the quorum checks: %+v", st)
	}
	mb = checkMembers(t, p, remaining, nil)
	if mb.Progress[cut.id].RecentActive || !mb.Progress[4].RecentActive {
		t.Fatalf("progress %v; want node %d inactive, the others active", mb.Progress, cut.id)
	}
	for _, id := range []uint64{p.id, 4, gone.id} {
		var re *RemovalError
		if err := mb.CheckRemoval(id); !errors.As(err, &re) || re.ID != id {
			t.Fatalf("CheckRemoval(%d) with node %d cut off: %v; want a *RemovalError", id, cut.id, err)
		}
	}
	if err := mb.CheckRemoval(cut.id); err != nil {
		t.Fatalf("CheckRemoval(%d), the cut-off voter: %v", cut.id, err)
	}
	nw.confChange(p, confChange(raftpb.ConfChangeRemoveNode, cut.id))
	nw.stop(cut)
	checkMembers(t, p, slices.DeleteFunc(remaining, func(id uint64) bool { return id == cut.id }), nil)
	nw.propose(p, 5)
	nw.converge()
}

// TestReplicaProposeConfChangeRefused checks ProposeConfChange's
// refusals — not primary, a wrong index, a joint or malformed change, the
// removal of the last voter — and that a change proposed while another
// is pending is written as an empty entry at its index, which is
// consumed: the next proposal goes at the index after it.
func TestReplicaProposeConfChangeRefused(t *testing.T) {
	nw := newNet(t, 9, 1, 2048)
	defer nw.close()
	m := nw.members[0]
	learner := confChange(raftpb.ConfChangeAddLearnerNode, 5)
	var npe *NotPrimaryError
	if err := m.r.ProposeConfChange(2, learner); !errors.As(err, &npe) || !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("ProposeConfChange before the election: %v", err)
	}
	if mb := m.r.Membership(); mb.Progress != nil || !slices.Equal(mb.Voters, []uint64{1}) {
		t.Fatalf("follower's membership %+v", mb)
	}
	if err := m.r.Campaign(); err != nil {
		t.Fatal(err)
	}
	nw.round(false)
	st := m.r.Status()
	next := st.LastIndex + 1
	var se *StaleSeqnoError
	if err := m.r.ProposeConfChange(next+1, learner); !errors.As(err, &se) || se.Want != next {
		t.Fatalf("ProposeConfChange at %d with %d next: %v", next+1, next, err)
	}
	for name, cc := range map[string]raftpb.ConfChangeV2{
		"two changes":    {Changes: []raftpb.ConfChangeSingle{learner.Changes[0], {Type: raftpb.ConfChangeAddLearnerNode, NodeID: 6}}},
		"explicit joint": {Transition: raftpb.ConfChangeTransitionJointExplicit, Changes: learner.Changes},
		"leave joint":    {},
		"node 0":         confChange(raftpb.ConfChangeAddNode, 0),
		"last voter":     confChange(raftpb.ConfChangeRemoveNode, 1),
	} {
		if err := m.r.ProposeConfChange(next, cc); !errors.Is(err, ErrBadConfChange) {
			t.Fatalf("ProposeConfChange of %s: %v", name, err)
		}
	}
	if err := m.r.Membership().CheckRemoval(1); !errors.Is(err, ErrRemovalRefused) {
		t.Fatalf("CheckRemoval of the last voter: %v", err)
	}
	if got := m.r.Status().LastIndex; got != st.LastIndex {
		t.Fatalf("refused changes moved the last index from %d to %d", st.LastIndex, got)
	}

	// The second change comes while the first is pending: raft writes an
	// empty entry in its place.
	if err := m.r.ProposeConfChange(next, learner); err != nil {
		t.Fatal(err)
	}
	if err := m.r.ProposeConfChange(next+1, confChange(raftpb.ConfChangeAddLearnerNode, 6)); err != nil {
		t.Fatal(err)
	}
	nw.propose(m, 1) // at next+2
	nw.round(false)
	if st := m.r.Status(); st.LastIndex != next+2 || st.Commit != next+2 {
		t.Fatalf("after two changes and an entry: %+v; want last index and commit %d", st, next+2)
	}
	for i, want := range []byte{ledger.RaftConfChangeV2, ledger.RaftEmpty} {
		if e, err := m.l.Read(ids.Seqno(next + uint64(i))); err != nil || e.Kind != ledger.KindRaft || e.Public[0] != want {
			t.Fatalf("entry %d: %+v, %v; want KindRaft type %d", next+uint64(i), e, err, want)
		}
	}
	mb := checkMembers(t, m, []uint64{1}, []uint64{5})
	if got := mb.CaughtUpLearners(next + 2); len(got) != 0 || mb.Progress[5].Match != 0 {
		t.Fatalf("learner 5, never started: progress %v, caught up %v", mb.Progress, got)
	}
	if err := mb.CheckRemoval(5); err != nil {
		t.Fatalf("CheckRemoval of a learner: %v", err)
	}
}

// TestReplicaRemoveLeader has the leader remove itself: once it applies
// the change it steps down (StepDownOnRemoval), the two remaining voters
// elect one of themselves at a later term, and commits go on.
func TestReplicaRemoveLeader(t *testing.T) {
	nw := newNet(t, 10, 3, 4096)
	defer nw.close()
	p := nw.primary(nil, 0)
	nw.round(true)
	term := p.r.Status().Term
	if err := p.r.Membership().CheckRemoval(p.id); err != nil {
		t.Fatalf("CheckRemoval of the leader, every voter active: %v", err)
	}
	nw.confChange(p, confChange(raftpb.ConfChangeRemoveNode, p.id))
	if st := p.r.Status(); st.Role == raft.StateLeader || st.Primary || p.roles[len(p.roles)-1] != fmt.Sprintf("follower@%d", term) {
		t.Fatalf("removed leader: %+v, roles %v; want it to step down in term %d", st, p.roles, term)
	}
	nw.stop(p)
	q := nw.primary(nil, term)
	var rest []uint64
	for _, m := range nw.live() {
		rest = append(rest, m.id)
	}
	checkMembers(t, q, rest, nil)
	nw.propose(q, 5)
	nw.converge()
}
