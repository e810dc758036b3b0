// Package node runs one Coco node of a replicated service: it opens (or
// creates, or joins) the ledger, rebuilds the key-value store and the Merkle
// tree from it, runs raft over it (internal/consensus) and serves the HTTPS
// API. On the primary (the raft leader) the write path is
//
//	request ─► auth ─► handler on a kv snapshot ─► kv.Commit (validate reads,
//	assign seqno) ─► seal: encrypt private writes, raft Propose, append Merkle
//	leaf ─► answer with x-coco-txid
//
//	loop goroutine: raft Tick ─► [propose signature entry] ─► Ready: append to
//	the ledger (one fsync per Ready: group commit), save HardState, send to
//	backups ─► OnCommit: advance the commit point to the last signature raft
//	has committed ─► wake waiters (?wait=commit) ─► rename finished chunks
//
// A backup forwards writes to the primary over the node-to-node channel and
// relays the answer; it serves reads from its own state, which it advances by
// applying the entries raft commits (read back from its ledger).
//
// Invariants:
//   - Seqnos are assigned, proposed to raft, and added to the Merkle tree
//     under orderMu: ledger order, raft index, Merkle leaf and seqno are one
//     order. Every raft entry is one ledger entry (KindRaft for raft's own).
//   - A transaction is Committed only once a signature entry at or after it
//     is committed by raft; receipts exist only for committed transactions.
//   - The view is raft's term, durable in the HardState before any entry of
//     it is proposed, and no two primaries share a term: an AES-GCM nonce
//     (view, seqno) never repeats for different content. A transaction lost
//     in an election answers Invalid once raft commits a later view's entry
//     at or before its seqno.
//   - A primary that loses leadership rolls its state back to raft's commit
//     index; a new primary adopts every entry of its log and signs at once.
//   - After a ledger write or fsync fails the node stops accepting writes and
//     says so (NodeFailed); it never retries an fsync.
//
// Concurrency: HTTP handlers run on net/http's goroutines; exactly one loop
// goroutine drives raft (Tick, ProcessReady) and runs its callbacks; the
// transport calls Step from its own goroutines. Open returns a Node that is
// not yet serving; Serve blocks until Close. Close stops the loop after a
// final signature and flush, and is safe to call once from any goroutine.
package node
