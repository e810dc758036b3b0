package consensus

import (
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/confchange"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// ErrRemovalRefused reports a removal Membership.CheckRemoval refuses.
// Every *RemovalError matches it.
var ErrRemovalRefused = errors.New("consensus: removal refused")

// RemovalError is the ErrRemovalRefused of one removal.
type RemovalError struct {
	ID     uint64 // raft id of the node not to remove
	Reason string // for humans
}

func (e *RemovalError) Error() string {
	return fmt.Sprintf("consensus: refusing to remove node %d: %s", e.ID, e.Reason)
}

func (e *RemovalError) Unwrap() error { return ErrRemovalRefused }

// Membership is a replica's view of the configuration: the one it has
// applied (committed configuration changes up to its applied index) and,
// on the leader, how far each member has got.
type Membership struct {
	Voters   []uint64 // raft ids, ascending
	Learners []uint64 // raft ids, ascending
	// Progress is the leader's knowledge of every member, itself
	// included, by raft id; nil unless the replica was leader when the
	// Membership was taken.
	Progress map[uint64]PeerProgress
}

// PeerProgress is what the leader knows of one member.
type PeerProgress struct {
	// Match is the highest index known to be in the member's log.
	Match uint64
	// RecentActive says whether the member was heard from since the
	// leader's last quorum check (every election timeout: CheckQuorum),
	// or joined since. Always true for the leader itself.
	RecentActive bool
}

// Membership returns the replica's applied configuration and, if it is
// the leader, its members' progress.
func (r *Replica) Membership() Membership {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := Membership{
		Voters:   slices.Sorted(slices.Values(r.cs.Voters)),
		Learners: slices.Sorted(slices.Values(r.cs.Learners)),
	}
	if r.rn.BasicStatus().RaftState != raft.StateLeader {
		return m
	}
	m.Progress = map[uint64]PeerProgress{}
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		m.Progress[id] = PeerProgress{Match: pr.Match, RecentActive: pr.RecentActive || id == r.id}
	})
	return m
}

// CaughtUpLearners returns the learners whose log reaches commit (the
// leader's commit index: ReplicaStatus.Commit), ascending: those the node
// may promote to voters without slowing commits down. It is empty unless
// m was taken on the leader.
func (m Membership) CaughtUpLearners(commit uint64) []uint64 {
	var out []uint64
	for _, id := range m.Learners {
		if pr, ok := m.Progress[id]; ok && pr.Match >= commit {
			out = append(out, id)
		}
	}
	return out
}

// CheckRemoval says whether removing node id keeps the service able to
// commit, as a *RemovalError (ErrRemovalRefused) if not: id must be a
// member and not the last voter, and the voters that remain and were
// recently active must be a majority of the voters that remain, so the
// new configuration has a working quorum from the moment it applies.
// Removing a learner is always fine; removing a voter needs m taken on the
// leader (Progress), which alone knows who is active.
func (m Membership) CheckRemoval(id uint64) error {
	if slices.Contains(m.Learners, id) {
		return nil
	}
	if !slices.Contains(m.Voters, id) {
		return &RemovalError{ID: id, Reason: "it is not a member"}
	}
	if len(m.Voters) == 1 {
		return &RemovalError{ID: id, Reason: "it is the last voter"}
	}
	if m.Progress == nil {
		return &RemovalError{ID: id, Reason: "not the leader: which voters are active is unknown"}
	}
	var active []uint64
	for _, v := range m.Voters {
		if v != id && m.Progress[v].RecentActive {
			active = append(active, v)
		}
	}
	if remaining := len(m.Voters) - 1; len(active) <= remaining/2 {
		return &RemovalError{ID: id, Reason: fmt.Sprintf("only %d of the %d remaining voters are active (%v), not a majority", len(active), remaining, active)}
	}
	return nil
}

// checkConfChange returns the error raft's ApplyConfChange would panic
// with if cc, proposed after index last, were applied to cs.
func checkConfChange(cs raftpb.ConfState, last uint64, cc raftpb.ConfChangeV2) error {
	trk := tracker.MakeProgressTracker(1, 0)
	cfg, prog, err := confchange.Restore(confchange.Changer{Tracker: trk, LastIndex: last}, cs)
	if err != nil {
		return err
	}
	trk.Config, trk.Progress = cfg, prog
	return applyConfChange(&trk, last+1, cc)
}
