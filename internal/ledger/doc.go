// Package ledger stores Coco's ledger: the encoding of entries, the chunked
// append-only files that hold them (which are also the raft log), crash
// recovery, and an offline read-only scan for the auditor.
//
// The normative specification is docs/ledger-format.md; this is a summary.
//
// # Entry format, version 1 (big-endian; P = len(public), Q = len(private))
//
//	offset   size  field
//	0        4     frame_len      u32 = 94 + P + Q (bytes after this field)
//	4        1     version        u8 = 1            ┐
//	5        1     kind           u8: 1 tx, 2 sig,  │
//	                              3 raft            │
//	6        8     view           u64 ≥ 1           │ body:
//	14       8     seqno          u64 ≥ 1           │ WriteSetDigest =
//	22       4     pub_len        u32 = P           │ SHA-256(body)
//	26       P     public                           │
//	26+P     4     priv_len       u32 = Q           │
//	30+P     Q     private        GCM ciphertext‖tag┘
//	30+P+Q   32    ce_digest
//	62+P+Q   32    claims_digest
//	94+P+Q   4     crc32c         CRC-32C (Castagnoli) of bytes [0, 94+P+Q)
//
// An entry is 98+P+Q bytes, at most MaxEntrySize. The frame length is
// range-checked before anything else, so zeros never decode as an entry.
// WriteSetDigest, AppendAAD and Leaf document exactly which bytes each
// covers.
//
// A KindSignature entry's public part is a SignatureRecord: a CBOR map with
// integer keys 0 (version = 1) … 7, in Core Deterministic Encoding, decoded
// strictly (the input must re-encode to itself).
//
// The ledger is the raft log (seqno = raft index, view = raft term). A
// KindRaft entry is one of raft's own entries, which carry no transaction:
// its public part is the raft entry type byte (RaftEmpty: the new leader's
// empty entry, nothing follows; RaftConfChangeV2: a marshalled ConfChangeV2
// follows), its private part is empty and both digests are all zeros;
// DecodeEntry and Validate enforce that. Raft entries that carry a
// transaction or a signature are stored as that KindTx or KindSignature
// entry, byte for byte. Package consensus converts between the two forms.
//
// # Files
//
// A ledger directory holds files named by seqno: committed chunks
// ledger_<first>-<last>.committed, immutable and byte-identical on every
// node, and tail files ledger_<first>, which are not yet known committed.
// Entries are contiguous from seqno 1 across files in name order. A file is
// complete when a KindSignature entry brings it to at least ChunkSize bytes;
// the next entry starts a new file. Boundaries thus depend only on the entry
// bytes and ChunkSize, so replicas with the same ChunkSize write identical
// chunks. SetCommitted renames complete files whose entries are committed.
//
// # Invariants
//
//   - Every file except the last ends on a signature entry; a committed
//     chunk holds exactly the seqnos its name says.
//   - Only the last file can be torn by a crash: Sync fsyncs a complete file
//     before creating the next, and syncs the directory before a second new
//     file in the same batch.
//   - Open truncates damage a crash can cause (an entry that does not
//     decode) only in the last tail file; anything else is a *CorruptError
//     and nothing is changed. Committed data is never repaired.
//   - Views never decrease along the ledger; seqnos have no gaps.
//   - After a write, fsync, rename, remove or truncate fails, the ledger is
//     poisoned (ErrPoisoned): fsync is never retried, since a failed fsync
//     may have dropped the dirty data it was asked to persist.
//
// # Concurrency
//
// Exactly one goroutine appends (Append, under the node's commit lock) while
// one syncer goroutine calls Sync and SetCommitted; Truncate may be called
// from either of the two, Close from either once both are done; Read, Scan,
// ReadRange, LastSeqno and DurableSeqno may be called from any goroutine at
// any time.
// Append only encodes into a memory buffer under a short lock; Sync swaps
// that buffer for a spare one and does its I/O without the append lock, so
// appends continue during write and fsync (group commit). Sync, SetCommitted,
// Truncate and Close exclude one another. Entries become readable when Sync
// has made them durable. Read and Scan take a read lock only to look up the
// index; an open file being read is reference-counted, so committing a chunk
// never closes a file under a reader. A Read, Scan or ReadRange racing a
// Truncate of the entries it reads fails with ErrNotFound.
package ledger
