// Package consensus is Coco's glue to etcd raft (go.etcd.io/raft/v3): the
// raft log storage over the ledger (docs/replication.md §1) and the Replica
// that drives a RawNode over it.
//
// # The ledger is the raft log
//
// Raft index = ledger seqno and raft term = ledger view; every raft entry
// is one ledger entry and back (ToLedger, ToRaft):
//
//	raft entry                      ledger entry
//	EntryNormal with data           KindTx or KindSignature: Data is the whole framed
//	                                entry, bytes as the primary wrote them; a backup
//	                                appends them unchanged, so chunks are byte-identical
//	EntryNormal without data        KindRaft, Public = [ledger.RaftEmpty]
//	EntryConfChangeV2               KindRaft, Public = [ledger.RaftConfChangeV2] ‖ Data
//
// EntryConfChange (version 1) is refused: Coco proposes ConfChangeV2 only.
//
// Storage implements raft.Storage: Entries reads durable entries from the
// ledger (raft keeps the not yet persisted tail in its own unstable log and
// never asks for it), Term answers from an in-memory index of term runs,
// FirstIndex is 1 and Snapshot is empty (no snapshots yet), LastIndex is
// the ledger's durable seqno. HardState (term, vote, commit) lives in the
// file StateFileName (29 bytes: version 1 ‖ term ‖ vote ‖ commit, u64
// big-endian, ‖ CRC-32C), replaced with vfs.WriteFileAtomic.
//
// # Configuration: bootstrap and restart
//
// Raft's RawNode takes its configuration (ConfState) from InitialState and
// requires it to be the configuration in force at Config.Applied. Coco
// derives it from the ledger instead of storing it: InitialState replays
// the EntryConfChangeV2 entries up to the HardState's commit index, in
// order, with raft's confchange package, from the empty configuration. So
// the node must start the RawNode with Config.Applied = HardState.Commit:
// at start it rebuilds its own state from the ledger entries up to that
// index, raft hands out only the entries committed after it, and the node
// applies their configuration changes with RawNode.ApplyConfChange, as
// usual. Nothing but the ledger knows the membership, and every
// configuration change, the initial one included, is under the next
// signature's Merkle root.
//
// Genesis: Storage.Bootstrap(voters...) on the empty Storage of every
// founding node (the same voters, so the same bytes) writes one
// configuration change entry per voter at term 1 (raft changes at most one
// voter per simple change) and HardState{Term: 1, Commit: len(voters)},
// durably (a crash part-way leaves a prefix of them and no HardState;
// Bootstrap again completes it). Then, exactly as on every restart:
// OpenStorage → InitialState → raft.NewRawNode(Config{Storage: s,
// Applied: hs.Commit}). A one-node
// cluster calls Campaign and is leader at term 2 at once. RawNode.Bootstrap
// (and raft.StartNode with peers) is not used: it fakes committed but
// unpersisted version 1 entries. A joining node opens an empty Storage
// without bootstrapping; the leader sends it the log from index 1 and it
// learns the membership from the committed configuration changes.
//
// # Replica
//
// Replica drives one RawNode over a Storage and a transport.Transport. It
// starts no goroutine: the caller ticks it (Tick), hands it the messages
// the transport receives (Step is a transport.Handler) and runs its Ready
// loop (ProcessReady while HasReady). The node does that from a ticker and
// a loop; tests do it in explicit rounds over a transport.MemNetwork, so
// whole networks run deterministically in one goroutine.
//
// ProcessReady handles one Ready in the standard RawNode loop: it takes
// the Ready under the replica's mutex, releases it, persists the Ready in
// the persistence order of Invariants (Append, SetHardState) and then
// sends its messages (Transport.Send), takes the mutex again to apply
// the committed configuration changes (RawNode.ApplyConfChange) and
// Advance, and then, without the mutex, calls OnRoleChange and
// OnCommit(commit) — in order, since ProcessReady calls are serialised
// (by a second mutex, which nothing else takes). So Tick, Step and the
// proposals never wait for an fsync: raft allows them between Ready and
// Advance (etcd's own node loop does the same), and what they produce
// comes in the next Ready. The Storage is built for it: its readers, which
// those calls reach through raft, do not wait for a write (Concurrency).
// A failed write fails the Replica for good (ErrReplicaFailed): restart
// from the ledger.
//
// Propose(e) takes a KindTx or KindSignature ledger entry and checks the
// coupling of kv seqnos and raft indices (docs/replication.md §2): RawNode
// does not return the index it assigns, so the Replica tracks raft's last
// index (its proposals plus the entries of each Ready, which include the
// empty entry of an election) and refuses e unless e.View is the current
// term of a leadership whose Ready has been processed (*NotPrimaryError,
// ErrNotPrimary) and e.Seqno is that last index + 1 (*StaleSeqnoError,
// ErrStaleSeqno). Leadership counts from the Ready that reports it, not
// from raft's live state: raft delivers a node's vote for itself during
// Advance, so it can become leader with its empty entry still to come in
// the next Ready. The last index follows a Ready only when the Ready is
// taken, when it holds every entry raft has appended: a leader's
// proposals made while the Ready is persisted raise it, and their entries
// come in the next Ready.
//
// Admitted entries are handed to raft together, as one MsgProp, when the
// next Ready is taken (or before a configuration change): raft sends an
// append message per follower per proposal while its inflight window has
// room, so proposing one by one costs a message per transaction and
// follower. If leadership of the entries' term is lost before that, they
// are dropped and the last index goes back (the node rolls back their
// transactions). Proposal forwarding is off and MsgProp from the network
// is dropped: only the primary proposes, at seqnos it assigned.
//
// # Configuration changes
//
// The node changes the membership with ProposeConfChange(index, cc),
// under the same checks as Propose (index is its next kv seqno): one
// ConfChangeV2 change at a time, never a joint configuration, since
// raft would append the entry leaving it on its own, at an index no kv
// seqno accounts for; and never one raft would panic applying (removing
// the last voter), refused up front with ErrBadConfChange. Raft writes a
// change proposed while another is not yet applied as an empty entry
// instead: the index is consumed, and the node sees from Membership that
// nothing changed. Membership reports the applied configuration (voters
// and learners) and, on the leader, every member's Match index and
// whether it was heard from since the last quorum check (RecentActive,
// which CheckQuorum keeps current). From it, CaughtUpLearners says which
// learners may be promoted (AddNode) and CheckRemoval refuses
// (*RemovalError, ErrRemovalRefused) removing a non-member, the last
// voter, or a voter without which the active voters would not be a
// majority of the remaining ones. A leader that removes itself steps down
// once the change applies (raft's StepDownOnRemoval), and the remaining
// voters elect a new one. A joining node starts a Replica on an empty
// Storage; the leader sends it the log from index 1.
//
// # Invariants
//
//   - The index (LastIndex, Term) describes exactly the ledger's durable
//     entries 1 … DurableSeqno; the Storage is the ledger's only writer.
//   - Persistence order, per Ready: if the Ready changes the term or vote,
//     nothing is sent before Append (truncate a conflicting suffix, durable
//     on return; append; one fsync) and SetHardState (durable on return);
//     otherwise the messages that are not responses (appends, heartbeats)
//     go out first, so the followers' fsyncs overlap the leader's, and the
//     responses (MsgAppResp, MsgVoteResp, MsgPreVoteResp) only after
//     Append. The HardState file is written when the term or vote changes,
//     when the commit index passes a configuration change (so a restarted
//     node's membership, derived from the changes up to the saved commit
//     index, is the committed one: never a stale one it could elect itself
//     in), every CommitSaveInterval committed entries, and by SaveHardState;
//     a commit-only change is kept in memory (the commit index is volatile
//     in raft). So the HardState on disk is never ahead of the ledger: its
//     commit index is at most the last durable seqno (checked by
//     SetHardState and again by OpenStorage, which refuses a ledger behind
//     it: ErrLedgerBehind), and may lag the true commit: a restarted node
//     is handed the later committed entries again and re-applies them. The
//     log may be ahead of the HardState after a crash (entries of a newer
//     term than the saved one), which raft tolerates since no message
//     depending on them was sent.
//   - OnCommit reports committed entries that earlier Readies made durable
//     before the Ready is persisted (never one this Ready rewrites, never
//     past a configuration change), and the rest after.
//   - A crash keeps everything made durable before it: entries up to the
//     last completed Append (a crash during a truncation leaves a prefix of
//     the log), and the last written HardState.
//   - Truncation never cuts committed entries, neither those at or below
//     the saved HardState's commit index nor those the ledger knows
//     committed (ledger.Truncate refuses): such an Append means a broken
//     leader, and the Storage fails (ErrFailed wrapping
//     ledger.ErrCommittedTruncation).
//   - After a failed write the Storage is failed for good (ErrFailed): it
//     no longer knows what is durable, and raft's in-memory state has
//     moved on. The node must stop, reopen ledger and Storage, and restart
//     raft from them.
//   - raft.ErrCompacted and raft.ErrUnavailable are returned unwrapped:
//     raft compares them with ==.
//
// # Concurrency
//
// The goroutine driving the RawNode calls Append and SetHardState (the
// writers; they are also serialised internally, with Bootstrap). Any
// goroutine may call the read methods — InitialState, Entries, Term,
// LastIndex, FirstIndex, Snapshot, HardState — at any time, concurrently
// with each other and with a writer: RawNode calls (Step, Propose) made
// while a Ready is being persisted read the Storage. Writers do their I/O
// holding only the writer lock and publish under an RWMutex that readers
// hold, shared, across their ledger reads. Readers see the log as of the
// last completed Append: entries being appended become visible when they
// are durable, and a conflicting suffix disappears when the Append that
// replaces it starts (before the ledger is cut). Entries returned by
// Entries are the caller's and are never modified.
package consensus
