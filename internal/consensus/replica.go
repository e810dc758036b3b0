package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/transport"
)

// Default timing of a Replica, in ticks (the caller's Tick calls).
const (
	DefaultElectionTicks  = 10
	DefaultHeartbeatTicks = 1
)

// Raft flow control of a Replica: a follower catching up gets at most
// maxSizePerMsg bytes of entries per append message and at most
// maxInflightMsgs unacknowledged append messages.
const (
	maxSizePerMsg   = 1 << 20
	maxInflightMsgs = 256
)

var (
	// ErrNotPrimary reports a proposal made to a replica that is not the
	// leader of the entry's view, or not yet a leader whose election entry
	// has been processed (see Replica.Propose). Every *NotPrimaryError
	// matches it. The caller rolls back and the client retries.
	ErrNotPrimary = errors.New("consensus: not primary")
	// ErrStaleSeqno reports a proposal whose seqno is not the leader's next
	// raft index: the kv and the raft log no longer agree on the next
	// seqno. Every *StaleSeqnoError matches it.
	ErrStaleSeqno = errors.New("consensus: proposal seqno is not the next raft index")
	// ErrReplicaFailed marks every error a Replica returns after persisting
	// a Ready failed: raft's in-memory state has moved past what is on
	// disk, so the replica refuses all work. The node must stop and
	// restart from the ledger (OpenStorage, NewReplica). It wraps the
	// original cause.
	ErrReplicaFailed = errors.New("consensus: replica failed")
	// ErrReplicaConfig reports an invalid ReplicaConfig.
	ErrReplicaConfig = errors.New("consensus: invalid replica config")
)

// NotPrimaryError is the ErrNotPrimary of a refused proposal.
type NotPrimaryError struct {
	View   uint64 // the entry's view (a configuration change has none: the replica's term)
	Term   uint64 // the replica's current raft term
	Leader uint64 // raft id of the leader this replica knows (0: none)
	Err    error  // raft's reason when raft dropped the proposal (raft.ErrProposalDropped); may be nil
}

func (e *NotPrimaryError) Error() string {
	s := fmt.Sprintf("consensus: not primary for view %d (term %d, leader %d)", e.View, e.Term, e.Leader)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap makes every NotPrimaryError match ErrNotPrimary, and Err.
func (e *NotPrimaryError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrNotPrimary}
	}
	return []error{ErrNotPrimary, e.Err}
}

// StaleSeqnoError is the ErrStaleSeqno of a refused proposal.
type StaleSeqnoError struct {
	Seqno uint64 // the entry's seqno
	Want  uint64 // raft's next index
}

func (e *StaleSeqnoError) Error() string {
	return fmt.Sprintf("consensus: proposal at seqno %d, but raft's next index is %d", e.Seqno, e.Want)
}

func (e *StaleSeqnoError) Unwrap() error { return ErrStaleSeqno }

// ReplicaConfig configures a Replica.
type ReplicaConfig struct {
	// ID is this node's raft id (transport.RaftID of its node id); not 0.
	ID uint64
	// Storage is the node's opened (and, at genesis, bootstrapped) raft
	// storage. The Replica is its only writer from now on.
	Storage *Storage
	// Transport sends this replica's messages. Its Handler, for incoming
	// messages, must call Replica.Step.
	Transport transport.Transport
	// Logger receives the replica's and raft's logs; nil is slog.Default().
	Logger *slog.Logger
	// ElectionTicks is raft's election timeout in ticks (randomised by
	// raft between it and twice it); 0 is DefaultElectionTicks.
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval in ticks; 0 is
	// DefaultHeartbeatTicks. It must be below ElectionTicks.
	HeartbeatTicks int
	// OnCommit is called (from ProcessReady, in order, without the
	// replica's lock held) with raft's new commit index once the entries
	// up to it are durable locally and raft has handed them out; a
	// configuration change among them has been applied to raft. The
	// values strictly increase. An index at or below the HardState's
	// commit at NewReplica is never reported: the node rebuilt its state
	// from the ledger up to there.
	OnCommit func(commit uint64)
	// OnRoleChange is called (like OnCommit, after the Ready is
	// persisted and before the OnCommit that follows the persist) when
	// this replica becomes leader or stops being leader, with the
	// term. When it reports leader = true, the leader's empty entry is
	// already accounted for and Propose accepts entries of that view.
	OnRoleChange func(leader bool, term uint64)
}

// ReplicaStatus is a snapshot of a Replica's raft state.
type ReplicaStatus struct {
	ID     uint64
	Term   uint64 // current term (= view)
	Commit uint64 // raft's commit index (may be ahead of what OnCommit reported)
	// Applied is the last commit index reported through OnCommit (or the
	// HardState's commit at NewReplica).
	Applied uint64
	Leader  uint64         // known leader's raft id; 0 if none
	Role    raft.StateType // follower, candidate, pre-candidate or leader
	// LastIndex is raft's last index as the replica tracks it: the last
	// index of the Ready taken last (by ProcessReady, possibly still being
	// persisted) plus the proposals made since. On a leader that may
	// Propose (Primary), the next proposal's index is LastIndex+1; on any
	// other replica it may lag raft's unstable log.
	LastIndex uint64
	// Primary says whether Propose accepts entries of view Term: the
	// replica is leader and has processed the Ready of its election.
	Primary bool
}

// Replica drives one raft.RawNode over a Storage and a Transport: the
// consensus half of a Coco node (docs/replication.md §1–§2).
//
// It starts no goroutine: the caller drives time (Tick), feeds incoming
// messages (Step, the transport's Handler) and runs the Ready loop
// (ProcessReady), so tests are deterministic and the node decides its own
// loop. Every RawNode call is made under one mutex, which ProcessReady
// does not hold across its disk writes: it takes the Ready under the
// mutex, persists and sends it outside, and Advances under the mutex
// again, so Tick, Step and the proposals never wait for an fsync.
type Replica struct {
	id        uint64
	s         *Storage
	tr        transport.Transport
	log       *slog.Logger
	onCommit  func(uint64)
	onRole    func(bool, uint64)
	readyMu   sync.Mutex // serialises ProcessReady: one Ready at a time, callbacks in order
	mu        sync.Mutex // guards everything below
	rn        *raft.RawNode
	cs        raftpb.ConfState // the configuration applied (InitialState, then ApplyConfChange)
	last      uint64           // raft's last index, as tracked (see ReplicaStatus.LastIndex)
	applied   uint64           // last commit index handed out and reported
	term      uint64           // raft's term as of the last processed Ready (its HardState)
	leader    bool             // leadership as of the last processed Ready (its SoftState)
	primaryAt uint64           // term of the leadership the processed Readies show; 0 if not leader
	err       error            // sticky: wraps ErrReplicaFailed

	// pending are entries admitted by Propose and not yet handed to raft
	// (flushLocked), all of term pendingTerm; r.last counts them.
	pending     []raftpb.Entry
	pendingTerm uint64
}

// NewReplica starts raft on cfg.Storage: RawNode with PreVote and
// CheckQuorum on and Config.Applied = HardState.Commit (the node rebuilds
// its state from the ledger up to the commit index; see the package doc).
// A leader that applies its own removal steps down (raft's
// StepDownOnRemoval), so that the remaining voters elect one of their own
// instead of following a leader outside the configuration, which could
// no longer propose anything. The replica starts as a follower; a
// one-node cluster calls Campaign.
func NewReplica(cfg ReplicaConfig) (*Replica, error) {
	switch {
	case cfg.ID == 0:
		return nil, fmt.Errorf("%w: raft id 0 is raft's \"none\"", ErrReplicaConfig)
	case cfg.Storage == nil:
		return nil, fmt.Errorf("%w: no Storage", ErrReplicaConfig)
	case cfg.Transport == nil:
		return nil, fmt.Errorf("%w: no Transport", ErrReplicaConfig)
	}
	if cfg.ElectionTicks == 0 {
		cfg.ElectionTicks = DefaultElectionTicks
	}
	if cfg.HeartbeatTicks == 0 {
		cfg.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if cfg.HeartbeatTicks < 0 || cfg.ElectionTicks <= cfg.HeartbeatTicks {
		return nil, fmt.Errorf("%w: election ticks %d must exceed heartbeat ticks %d > 0", ErrReplicaConfig, cfg.ElectionTicks, cfg.HeartbeatTicks)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	lg := cfg.Logger.With("raft_id", cfg.ID)
	hs, cs, err := cfg.Storage.InitialState()
	if err != nil {
		return nil, fmt.Errorf("consensus: replica %d: %w", cfg.ID, err)
	}
	last, err := cfg.Storage.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("consensus: replica %d: %w", cfg.ID, err)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              cfg.ID,
		ElectionTick:    cfg.ElectionTicks,
		HeartbeatTick:   cfg.HeartbeatTicks,
		Storage:         cfg.Storage,
		Applied:         hs.Commit,
		MaxSizePerMsg:   maxSizePerMsg,
		MaxInflightMsgs: maxInflightMsgs,
		PreVote:         true,
		CheckQuorum:     true,
		// Only the primary proposes, with seqnos it assigned: a follower
		// must not pass proposals on to a leader that would give them
		// other indices.
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{lg},
	})
	if err != nil {
		return nil, fmt.Errorf("consensus: replica %d: start raft: %w", cfg.ID, err)
	}
	return &Replica{
		id:       cfg.ID,
		s:        cfg.Storage,
		tr:       cfg.Transport,
		log:      lg,
		onCommit: cfg.OnCommit,
		onRole:   cfg.OnRoleChange,
		rn:       rn,
		cs:       cs,
		last:     last,
		term:     hs.Term,
		applied:  hs.Commit,
	}, nil
}

// Tick advances raft's logical clock by one tick. A failed replica
// ignores it.
func (r *Replica) Tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.rn.Tick()
	}
}

// Step hands messages from peers to raft; it is a transport.Handler.
// Messages raft refuses (local message types, a response from a peer not
// in the configuration, a message addressed to another node) are logged
// and dropped: they come from the network, which raft tolerates losing.
func (r *Replica) Step(_ context.Context, msgs []raftpb.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	for _, m := range msgs {
		if m.To != r.id {
			r.log.Warn("consensus: dropped raft message for another node", "to", m.To, "from", m.From, "type", m.Type)
			continue
		}
		if m.Type == raftpb.MsgProp {
			// Proposals are the primary's own (forwarding is disabled):
			// entries from the network would take seqnos the kv did not
			// assign.
			r.log.Warn("consensus: dropped a proposal from the network", "from", m.From)
			continue
		}
		if err := r.rn.Step(m); err != nil {
			r.log.Debug("consensus: raft refused a message", "from", m.From, "type", m.Type, "err", err)
		}
	}
}

// Propose appends the ledger entry e (KindTx or KindSignature, as the
// primary encoded it) to raft's log at index e.Seqno. The replica must be
// the leader of view e.View and have processed the Ready that made it
// leader (so the election's empty entry is counted), else
// *NotPrimaryError; e.Seqno must be raft's last index + 1, else
// *StaleSeqnoError. Raft does not return the index it assigns, so the
// replica tracks the last index itself; refusing a mismatch here keeps kv
// seqnos and raft indices one counter (docs/replication.md §2). An entry
// that does not validate, or of kind KindRaft (raft writes those itself),
// is an *EntryError. Success means the entry is in the leader's log, not
// that it is durable or will commit.
func (r *Replica) Propose(e *ledger.Entry) error {
	if e.Kind != ledger.KindTx && e.Kind != ledger.KindSignature {
		return &EntryError{Index: uint64(e.Seqno), Term: uint64(e.View), Reason: "only transaction and signature entries are proposed, not " + e.Kind.String()}
	}
	re, err := ToRaft(e)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.admitLocked(re.Term, re.Index)
	if err != nil {
		return err
	}
	if len(r.pending) == 0 {
		r.pendingTerm = st.Term
	}
	r.pending = append(r.pending, raftpb.Entry{Data: re.Data})
	r.last++
	return nil
}

// flushLocked hands the pending proposals to raft as one MsgProp: one
// append to raft's log and one append message per follower for the lot,
// where a proposal each would cost a message per follower each (raft sends
// at once while its inflight window has room). ProcessReady flushes before
// it takes a Ready, so batching adds no latency: entries wait only while
// the loop is busy with the previous Ready, which is when they pile up.
//
// If leadership was lost since the entries were admitted, they are
// dropped: the node rolls back whatever its lost term executed past the
// commit point, and with proposal forwarding disabled raft would refuse
// them anyway. Raft drops a leader's proposal only during a leadership
// transfer, which Coco does not start, or when the leader is no longer
// in the configuration, which StepDownOnRemoval makes a follower at once;
// either way raft is no longer leader of that term, proposals fail
// admission, and the next Ready shows the node the change of role.
func (r *Replica) flushLocked() error {
	if len(r.pending) == 0 {
		return nil
	}
	ents := r.pending
	r.pending = r.pending[len(r.pending):]
	if len(r.pending) == 0 && cap(r.pending) > 4096 {
		r.pending = nil // do not keep a burst's array
	}
	st := r.rn.BasicStatus()
	var err error
	if st.RaftState != raft.StateLeader || st.Term != r.pendingTerm {
		err = fmt.Errorf("leadership of term %d lost", r.pendingTerm)
	} else {
		err = r.rn.Step(raftpb.Message{Type: raftpb.MsgProp, From: r.id, Entries: ents})
	}
	clear(ents) // raft copied the entries; do not pin their data
	if err != nil {
		r.last -= uint64(len(ents))
		r.log.Warn("consensus: dropped proposals", "entries", len(ents), "term", r.pendingTerm, "err", err)
	}
	return err
}

// ProposeConfChange appends the configuration change cc to raft's log at
// index, as an EntryConfChangeV2 (in the ledger, a KindRaft entry): the
// node calls it under its seqno mutex with index = its next kv seqno, and
// applies that seqno as an entry without a write set. The checks are
// Propose's: the replica must be primary (*NotPrimaryError) and index
// raft's last index + 1 (*StaleSeqnoError).
//
// cc must be one change (Changes of length 1, NodeID not 0) with the
// default transition, else ErrBadConfChange: a joint configuration would
// make raft append the entry that leaves it by itself, at an index no kv
// seqno accounts for. A change that does not apply to the current
// configuration (removing the last voter) is ErrBadConfChange too: raft
// would panic applying it, on every replica. Removing a voter should be
// checked with Membership.CheckRemoval first.
//
// While an earlier configuration change is not yet applied (and on a new
// leader until it has applied its predecessors' entries), raft does not
// refuse the proposal: it writes an empty EntryNormal at index instead (a
// ledger KindRaft empty entry) and logs why. The index is consumed all
// the same, so the replica counts it, and the node applies it as any
// entry without a write set; it learns the change did not happen from
// Membership once the entry is committed, and may propose it again.
// Success means the entry is in the leader's log, not that it will commit
// or be a configuration change.
func (r *Replica) ProposeConfChange(index uint64, cc raftpb.ConfChangeV2) error {
	if len(cc.Changes) != 1 || cc.Transition != raftpb.ConfChangeTransitionAuto {
		return fmt.Errorf("%w: %d changes with transition %v: Coco proposes one change at a time, never a joint configuration", ErrBadConfChange, len(cc.Changes), cc.Transition)
	}
	if cc.Changes[0].NodeID == 0 {
		return fmt.Errorf("%w: node id 0 is raft's \"none\"", ErrBadConfChange)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.admitLocked(r.rn.BasicStatus().Term, index)
	if err != nil {
		return err
	}
	// r.cs is the configuration raft's is: both change only in advance,
	// under this lock. If a change is pending raft empties this one, so
	// checking against r.cs then is at worst too strict.
	if err := checkConfChange(r.cs, r.last, cc); err != nil {
		return fmt.Errorf("%w: %v at index %d: %w", ErrBadConfChange, cc.Changes[0], index, err)
	}
	// The change goes after the entries admitted before it.
	if err := r.flushLocked(); err != nil {
		return &NotPrimaryError{View: st.Term, Term: st.Term, Leader: st.Lead, Err: err}
	}
	if err := r.rn.ProposeConfChange(cc); err != nil {
		return &NotPrimaryError{View: st.Term, Term: st.Term, Leader: st.Lead, Err: err}
	}
	r.last++
	return nil
}

// admitLocked checks a proposal of an entry of view at index: the replica
// must work, lead view with its election's Ready processed, and index
// must be raft's next. It returns raft's status, for the error of a
// proposal raft drops.
func (r *Replica) admitLocked(view, index uint64) (raft.BasicStatus, error) {
	if r.err != nil {
		return raft.BasicStatus{}, r.err
	}
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || r.primaryAt != st.Term || view != st.Term {
		return st, &NotPrimaryError{View: view, Term: st.Term, Leader: st.Lead}
	}
	if index != r.last+1 {
		return st, &StaleSeqnoError{Seqno: index, Want: r.last + 1}
	}
	return st, nil
}

// Campaign makes this replica campaign for leadership now (a pre-vote
// first, as PreVote is on). A one-node cluster becomes leader at once; the
// election shows in the next ProcessReady.
func (r *Replica) Campaign() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	return r.rn.Campaign()
}

// HasReady says whether ProcessReady has work.
func (r *Replica) HasReady() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err == nil && (len(r.pending) > 0 || r.rn.HasReady())
}

// Status returns a snapshot of the replica's raft state.
func (r *Replica) Status() ReplicaStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.rn.BasicStatus()
	return ReplicaStatus{
		ID:        r.id,
		Term:      st.Term,
		Commit:    st.Commit,
		Applied:   r.applied,
		Leader:    st.Lead,
		Role:      st.RaftState,
		LastIndex: r.last,
		Primary:   st.RaftState == raft.StateLeader && r.primaryAt == st.Term,
	}
}

// Err returns the replica's sticky failure (wrapping ErrReplicaFailed),
// or nil.
func (r *Replica) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// ProcessReady handles one Ready, if raft has one, in the standard
// RawNode loop and the order the design requires (docs/replication.md
// §1): take the Ready under the lock; without it, append its entries
// (truncating a conflicting suffix; one fsync), save its HardState and
// send its messages; under the lock again, apply the committed
// configuration changes and Advance; finally call OnRoleChange and
// OnCommit without the lock (so they may call Propose or Status). Committed
// entries that are already durable (from earlier Readies) are reported
// through OnCommit before the persist (see commitBeforePersist), so one
// Ready may call OnCommit twice, the values still increasing. Tick,
// Step, Propose and ProposeConfChange do not wait for the disk: raft
// allows them between Ready and Advance, and their entries and messages
// come in the next Ready. It returns after one Ready; the caller loops
// while HasReady. ProcessReady calls are serialised.
//
// A failed write fails the replica for good (ErrReplicaFailed, wrapping
// the Storage's ErrFailed): raft would otherwise believe unwritten entries
// durable. A Ready carrying a snapshot is such a failure too: Coco has no
// snapshots, and the Storage never offers one.
func (r *Replica) ProcessReady() error {
	r.readyMu.Lock()
	defer r.readyMu.Unlock()
	rd, ok, err := r.takeReady()
	if err != nil || !ok {
		return err
	}
	if commit := r.commitBeforePersist(rd); commit != 0 && r.onCommit != nil {
		r.onCommit(commit)
	}
	if err := r.persist(rd); err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.failLocked(err)
	}
	roleChanged, leader, term, commit, err := r.advance(rd)
	if err != nil {
		return err
	}
	if roleChanged && r.onRole != nil {
		r.onRole(leader, term)
	}
	if commit != 0 && r.onCommit != nil {
		r.onCommit(commit)
	}
	return nil
}

// takeReady takes raft's next Ready, if any, under the lock, and with it
// raft's last index.
func (r *Replica) takeReady() (rd raft.Ready, ok bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return raft.Ready{}, false, r.err
	}
	_ = r.flushLocked() // a drop is logged; the Ready shows the lost leadership
	if !r.rn.HasReady() {
		return raft.Ready{}, false, nil
	}
	rd = r.rn.Ready()
	if !raft.IsEmptySnap(rd.Snapshot) {
		return raft.Ready{}, false, r.failLocked(fmt.Errorf("snapshot at index %d: Coco has no snapshots", rd.Snapshot.Metadata.Index))
	}
	if n := len(rd.Entries); n > 0 {
		// The Ready holds every entry raft has appended and not yet handed
		// out, so its last index is raft's, now. A follower's batch may
		// replace a conflicting suffix: set it, do not take a maximum. On a
		// leader it equals r.last, as proposals are made under this lock.
		// This is the only place r.last follows a Ready: proposals made
		// after Ready() and before Advance raise r.last, and their entries
		// come in the next Ready, so setting it from this Ready later
		// would lose them.
		r.last = rd.Entries[n-1].Index
	}
	return rd, true, nil
}

// persist writes the Ready's entries and HardState durably and sends its
// messages, all without the lock: only ProcessReady, which is serialised,
// writes the Storage, and its readers do not wait for a write (see the
// package doc, Concurrency).
//
// Raft's responses (MsgAppResp, MsgVoteResp, MsgPreVoteResp) promise that
// the entries or the vote are durable, so they go out after the writes.
// The other messages — a leader's appends and heartbeats above all — go out
// before the entries are written, so the followers' fsyncs overlap the
// leader's (raft thesis §10.2.1; the leader counts itself toward a commit
// only at Advance, after its own write). That is safe only if no term or
// vote change is pending: a Ready that changes them writes the HardState
// first and sends everything after.
func (r *Replica) persist(rd raft.Ready) error {
	early, late := rd.Messages, []raftpb.Message(nil)
	if r.s.ChangesVote(rd.HardState) {
		early, late = nil, rd.Messages
	} else if len(rd.Messages) > 0 {
		early, late = splitResponses(rd.Messages)
	}
	if len(early) > 0 {
		r.tr.Send(early)
	}
	if err := r.s.Append(rd.Entries); err != nil {
		return err
	}
	if err := r.s.SetHardState(rd.HardState); err != nil {
		return err
	}
	if len(late) > 0 {
		r.tr.Send(late)
	}
	return nil
}

func isResponse(m raftpb.Message) bool {
	switch m.Type {
	case raftpb.MsgAppResp, raftpb.MsgVoteResp, raftpb.MsgPreVoteResp:
		return true
	}
	return false
}

// splitResponses separates the messages that acknowledge this Ready's
// writes from the others, keeping their order within each group.
func splitResponses(msgs []raftpb.Message) (others, responses []raftpb.Message) {
	if !slices.ContainsFunc(msgs, isResponse) {
		return msgs, nil // a leader's usual Ready: no copy
	}
	for _, m := range msgs {
		if isResponse(m) {
			responses = append(responses, m)
		} else {
			others = append(others, m)
		}
	}
	return others, responses
}

// advance applies the persisted Ready's committed configuration changes
// and Advances, under the lock, and returns what the callbacks must be
// told (commit = 0: nothing newly committed).
func (r *Replica) advance(rd raft.Ready) (roleChanged, leader bool, term, commit uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range rd.CommittedEntries {
		if e.Type != raftpb.EntryConfChangeV2 {
			continue
		}
		var cc raftpb.ConfChangeV2
		if err := cc.Unmarshal(e.Data); err != nil {
			// Append converted it (ToLedger), which unmarshals it.
			return false, false, 0, 0, r.failLocked(&EntryError{Index: e.Index, Term: e.Term, Reason: "committed configuration change does not unmarshal", Err: err})
		}
		r.cs = *r.rn.ApplyConfChange(cc)
	}
	if n := len(rd.CommittedEntries); n > 0 && rd.CommittedEntries[n-1].Index > r.applied {
		r.applied = rd.CommittedEntries[n-1].Index
		commit = r.applied
	}
	r.rn.Advance(rd)
	// Leadership as of this Ready, not as of now: raft delivers a node's
	// vote for itself during Advance, so a replica may become leader there,
	// with its empty entry in the next Ready, not in this one. The state a
	// Ready reports comes with every entry raft has appended up to it, and
	// takeReady counted them in r.last.
	if !raft.IsEmptyHardState(rd.HardState) {
		r.term = rd.HardState.Term
	}
	if rd.SoftState != nil {
		r.leader = rd.SoftState.RaftState == raft.StateLeader
	}
	term, leader = r.term, r.leader
	// A new term of leadership is a change even if no Ready showed the
	// replica losing the previous one.
	roleChanged = leader != (r.primaryAt != 0) || (leader && r.primaryAt != term)
	r.primaryAt = 0
	if leader {
		// r.last counts the election's empty entry: proposals of this
		// view may start.
		r.primaryAt = term
	}
	if roleChanged {
		r.log.Info("consensus: role changed", "leader", leader, "term", term)
	}
	return roleChanged, leader, term, commit, nil
}

// commitBeforePersist reports, before the Ready is persisted, the
// committed entries that earlier Readies already made durable here, up to
// the first configuration change and below the first index this Ready
// writes: a commit then reaches waiting clients
// without waiting behind the fsync of the next batch, which would add a
// whole fsync to every commit under load. Raft hands out committed entries
// that are still in this Ready's Entries too (synchronous mode lets the
// application persist first); those, and configuration changes, which
// must be applied to raft (at Advance) before the node may propose the
// next one, are reported after the persist.
func (r *Replica) commitBeforePersist(rd raft.Ready) uint64 {
	durable, err := r.s.LastIndex()
	if err != nil {
		return 0
	}
	if len(rd.Entries) > 0 {
		// This Ready may replace a suffix of the durable log (a follower's
		// conflicting entries): raft's committed entries from its first
		// index on are the new ones, not what the Storage holds yet.
		durable = min(durable, rd.Entries[0].Index-1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	commit := uint64(0)
	for _, e := range rd.CommittedEntries {
		if e.Index > durable || e.Type == raftpb.EntryConfChangeV2 {
			break
		}
		commit = e.Index
	}
	if commit <= r.applied {
		return 0
	}
	r.applied = commit
	return commit
}

// failLocked makes err the replica's sticky failure and returns it.
func (r *Replica) failLocked(err error) error {
	if r.err == nil {
		r.err = fmt.Errorf("%w: replica %d: %w", ErrReplicaFailed, r.id, err)
		r.log.Error("consensus: replica failed", "err", err)
	}
	return r.err
}

// raftLogger sends raft's logs to slog. Raft logs elections and term
// changes at Info, which a node wants; Debug is chatty.
type raftLogger struct{ l *slog.Logger }

var _ raft.Logger = raftLogger{}

func (g raftLogger) Debug(v ...any)                 { g.l.Debug(fmt.Sprint(v...)) }
func (g raftLogger) Debugf(format string, v ...any) { g.l.Debug(fmt.Sprintf(format, v...)) }
func (g raftLogger) Info(v ...any)                  { g.l.Info(fmt.Sprint(v...)) }
func (g raftLogger) Infof(format string, v ...any)  { g.l.Info(fmt.Sprintf(format, v...)) }
func (g raftLogger) Warning(v ...any)               { g.l.Warn(fmt.Sprint(v...)) }
func (g raftLogger) Warningf(format string, v ...any) {
	g.l.Warn(fmt.Sprintf(format, v...))
}
func (g raftLogger) Error(v ...any)                 { g.l.Error(fmt.Sprint(v...)) }
func (g raftLogger) Errorf(format string, v ...any) { g.l.Error(fmt.Sprintf(format, v...)) }

// Fatal and Panic must not return (raft relies on it): they log and panic,
// which a library may do where raft would exit.
func (g raftLogger) Fatal(v ...any)                 { g.Panic(v...) }
func (g raftLogger) Fatalf(format string, v ...any) { g.Panicf(format, v...) }
func (g raftLogger) Panic(v ...any) {
	s := fmt.Sprint(v...)
	g.l.Error(s)
	panic(s)
}
func (g raftLogger) Panicf(format string, v ...any) {
	s := fmt.Sprintf(format, v...)
	g.l.Error(s)
	panic(s)
}
