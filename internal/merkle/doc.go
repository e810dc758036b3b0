// Package merkle is Coco's append-only Merkle tree: the RFC 9162 (Certificate
// Transparency v2) tree over one leaf per ledger transaction, with roots and
// inclusion proofs for every past tree size.
//
// # Hashing
//
// Leaves and interior nodes are hashed as in RFC 9162 §2.1.1, with SHA-256 and
// domain separation so that a leaf can never be passed off as a node:
//
//	leaf hash = SHA-256(0x00 ‖ leaf data)
//	node hash = SHA-256(0x01 ‖ left ‖ right)
//	MTH({})   = SHA-256("")
//
// A tree of n leaves is split at k, the largest power of two below n; the left
// part is always a perfect subtree. The hashes are therefore byte-identical to
// transparency-dev/merkle's rfc6962 hasher and to any RFC 9162 verifier.
//
// # Storage
//
// The tree keeps, per level, the hash of every perfect subtree completed so
// far. Level 0 holds the leaf hashes; entry i of level l covers leaves
// [i·2^l, (i+1)·2^l):
//
//	level 2:  ┌───────── n20 ─────────┐
//	level 1:  ┌── n10 ──┐   ┌── n11 ──┐   ┌── n12 ──┐
//	level 0:  l0       l1   l2       l3   l4       l5   l6
//	          └──────────────── Size() = 7 ────────────────┘
//
// (n20 is not yet joined with anything on its right: [4, 8) is incomplete,
// so level 2 has one entry, level 1 three and level 0 seven.)
//
// Root(7) = H(n20, H(n12, l6)): the perfect subtrees named by the set bits of
// the size, folded right to left. Because a perfect subtree never changes once
// it is complete, these stored nodes serve the root and the inclusion proof of
// every size up to Size(), not just the current one.
//
// Invariants, for every level l kept: len(level[l]) == Size() >> l, and
// level[l+1][i] == H(level[l][2i], level[l][2i+1]). Append therefore hashes
// exactly once per subtree it completes (amortised one node hash per leaf).
// Levels are stored in fixed chunks of 4096 hashes, so Append allocates only
// when it starts a chunk and never copies more than one chunk: the write lock
// is never held for a multi-gigabyte slice copy. Memory is about 64 bytes per
// leaf (the leaf and its share of the levels above), e.g. 640 MB for ten
// million transactions; nothing below the current size is ever forgotten.
//
// # Concurrency
//
// A Tree is safe for one writer (Append, Truncate) running concurrently with
// any number of readers (Size, Root, RootAt, InclusionProof, LeafAt). Readers
// share a read lock and never observe a half-applied Append. Multiple writers
// must be serialised by the caller: the ledger has exactly one appender, and
// a second one would make leaf positions meaningless anyway.
//
// Errors: every index or size outside the tree is reported as a *RangeError,
// which matches ErrOutOfRange under errors.Is.
package merkle
