// Package node runs one Coco node: it opens (or creates) the ledger, rebuilds
// the key-value store and the Merkle tree from it, serves the HTTPS API, and
// drives the write path:
//
//	request ─► auth ─► handler on a kv snapshot ─► kv.Commit (validate reads,
//	assign seqno) ─► seal: encrypt private writes, append ledger entry, append
//	Merkle leaf ─► answer with x-coco-txid
//
//	flusher goroutine: [append signature entry] ─► ledger.Sync (one fsync per
//	batch: group commit) ─► advance durable and committed seqnos ─► wake
//	waiters (?wait=commit) ─► rename completed chunks to .committed
//
// Invariants:
//   - Every entry appended to the ledger was sealed under the kv commit mutex,
//     so ledger order, Merkle leaf order and seqno order are one order.
//   - A transaction is Committed only once a signature entry at or after it is
//     durable; receipts exist only for committed transactions.
//   - The node's view is made durable before any entry is written in it, so a
//     (view, seqno) pair, and with it an AES-GCM nonce, is never reused after a
//     crash; transactions of an earlier view that did not survive a crash
//     answer Invalid.
//   - After a ledger write or fsync fails the node stops accepting writes and
//     says so (NodeFailed); it never retries an fsync.
//
// Concurrency: HTTP handlers run on net/http's goroutines; exactly one
// flusher goroutine calls ledger.Sync. Open returns a Node that is not yet
// serving; Serve blocks until Close. Close stops the flusher after a final
// flush and signature, and is safe to call once from any goroutine.
package node
