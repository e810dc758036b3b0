// Package kv is Coco's in-memory MVCC store: named ordered maps of byte
// keys to byte values, transactions with optimistic concurrency control, and
// the write sets that become ledger entries.
//
// # Model
//
// A Store holds named maps (MapName). Keys and values are []byte; each map
// is ordered by bytes.Compare. Every stored item carries its version: the
// seqno of the ledger entry that last wrote it. Maps whose name starts with
// "public:" are recorded in the ledger in clear, all others encrypted; the
// store only tells them apart (WriteSet.Split), the caller encrypts.
//
// Every state of the store is immutable. The Store publishes its latest
// state, a directory of copy-on-write B-trees (github.com/google/btree), with
// one atomic pointer. Begin takes that pointer as the transaction's
// snapshot: O(1), no lock. A transaction reads its snapshot overlaid with its
// own buffered writes, and records what it read: each point read with the
// version it saw (0: absent), each range read with the range it covered
// and how many keys the snapshot held there.
//
// Commit validates, under the store's commit mutex, that nothing the
// transaction read has changed since its snapshot, assigns the next seqno,
// lets the caller seal the entry (encode and append it to the ledger) and
// publishes a new state with the writes applied at that version. A conflict
// applies nothing and returns a *ConflictError; the caller re-runs its
// handler on a fresh transaction (Retry). Apply is the same without
// validation, for ledger replay and backups; Sequence assigns a seqno to an
// entry that writes nothing, such as a signature.
//
// Rollback(to) republishes the state at seqno to and drops every later
// one, for raft replacing the uncommitted suffix of the log; the next
// Commit, Sequence or Apply takes seqno to+1 again. To allow it the store
// keeps its history, the published states back to the compaction point,
// in a ring buffer; Compact(committed) moves that point forward and
// forgets older states. The history costs about the nodes that its commits
// copied, so a node must compact as entries commit, or memory grows with
// the ledger.
//
// # Invariants
//
//   - Seqnos are dense: each Commit, Sequence or Apply takes Seqno()+1,
//     and Rollback(to) sets Seqno() to to, so seqnos after to are taken
//     again, by entries with other contents.
//   - The history holds exactly the states at seqnos [min(c, Seqno()),
//     Seqno()], where c is the highest seqno given to Compact; its newest
//     is the latest state. Rollback can restore any of them but none below
//     c. A state dropped by Rollback is flagged and never published again.
//   - A published state, its directory and its trees are never modified,
//     but for the state's dropped flag, which Rollback sets under the mutex.
//     Only the committer, under the mutex, clones a tree (btree's Clone must
//     not run concurrently with itself) and only clones are written, before
//     they are published.
//   - Versions are seqnos, so each write of a key gives it a version no
//     earlier state of its history had. Hence a point read is still valid
//     iff the key's version is unchanged, and a range read iff the range
//     holds as many keys as at the snapshot and none newer than the
//     snapshot. Across a rollback a version can name two contents, so this
//     holds only for a snapshot that is still part of the history: Commit
//     refuses a transaction whose snapshot Rollback dropped
//     (*RolledBackError, ErrRolledBack) before validating anything.
//   - A map with no keys is absent from the directory.
//   - Keys and values in the store are never modified: Put copies its
//     arguments, and everything the store hands out (Get and Scan results,
//     write sets) is shared and read-only for the caller.
//   - Serialisability: a committed transaction behaves as if it ran alone at
//     its seqno. A transaction without writes commits at its snapshot
//     without validation, which is serialisable but may be stale.
//
// # Concurrency
//
// Store methods are safe for concurrent use; readers (Begin, Store.Get, all
// Tx reads) never block. Commit, Sequence, Apply, Rollback and Compact are
// serialised by one mutex; the first three run their seal callbacks one at a
// time in seqno order, while holding it: seal must be short and must not
// call any of the five. A Tx belongs to one goroutine at a time.
//
// A rollback never changes what a Tx reads: its snapshot is immutable, so a
// Tx begun before Rollback(to) keeps reading the state it began on. If that
// state is after to, the Tx can no longer commit, even if it wrote nothing
// or what it read is unchanged: it fails with ErrRolledBack, which Retry
// does not retry (after a rollback the node is no longer the primary; its
// caller decides). A Tx begun at or before to commits as usual, validated
// against the restored history. A read-only Commit checks its snapshot
// without the mutex, so a Rollback racing with it may not fail it: like
// every result read at a seqno, it is final only once that seqno commits. Validation runs under the mutex and
// costs a lookup per point read and a re-scan per range read, but nothing
// when no other commit happened since the snapshot, and nothing for a map
// whose tree did not change.
//
// # Errors and limits
//
// Map names are 1 to MaxMapNameLen bytes of UTF-8 without control
// characters, keys at most MaxKeyLen bytes, values at most MaxValueLen
// bytes. Put and Delete do not return errors: an invalid write is dropped,
// remembered in Tx.Err, and fails Commit, so a handler can never commit part
// of what it meant to. ValidateMapName, ValidateKey and ValidateValue let
// callers check inputs earlier.
//
// # Write set wire format, version 1
//
// A WriteSet encodes canonically: maps sorted by name, keys sorted within
// each map, all unique, no empty map, minimal unsigned LEB128 varints
// (encoding/binary Uvarint). Equal write sets encode to equal bytes and
// DecodeWriteSet accepts nothing else, so decoding and re-encoding is
// byte-identical and a digest of the encoding identifies the write set.
//
//	write set:
//	+---------+-----------------+-------+-------+-----+
//	| version | map count       | map 0 | map 1 | ... |
//	| 0x01    | uvarint         |       |       |     |
//	+---------+-----------------+-------+-------+-----+
//
//	map (names strictly increasing):
//	+-----------------+------------+-----------------+---------+-----+
//	| name length     | name       | write count ≥ 1 | write 0 | ... |
//	| uvarint 1..256  | UTF-8      | uvarint         |         |     |
//	+-----------------+------------+-----------------+---------+-----+
//
//	write (keys strictly increasing within the map):
//	+--------+------------------+-----+--------------------+-------+
//	| op     | key length       | key | value length       | value |
//	| 1 byte | uvarint ≤ 64 KiB |     | uvarint ≤ 16 MiB   |       |
//	+--------+------------------+-----+--------------------+-------+
//	op 0x00 = put: the value fields follow.
//	op 0x01 = delete: the write ends after the key.
//
// The empty write set is the two bytes 01 00. A future version changes the
// first byte; this version rejects any other.
package kv
