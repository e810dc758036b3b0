// Package receipt builds and verifies Coco receipts: COSE_Sign1 messages, as
// in RFC 9942 (COSE Receipts), that prove one transaction is in the ledger
// under a Merkle root signed by the service identity. It is Coco's reference
// verifier and depends only on the standard library, go-cose, fxamacker/cbor,
// transparency-dev/merkle and Coco's tiny id package, so it can be used
// without the rest of Coco.
//
// # How a receipt is made
//
// Every transaction is one leaf of an RFC 9162 Merkle tree (SHA-256). The
// leaf is 96 bytes and its hash is the RFC 9162 leaf hash:
//
//	leaf      = write_set_digest(32) ‖ SHA-256(commit_evidence)(32) ‖ claims_digest(32)
//	leaf hash = SHA-256(0x00 ‖ leaf)
//
// A signature transaction signs the root of the tree with the service key:
// SignRoot makes one COSE_Sign1 per signature transaction. The receipt of any
// transaction under that root is the same message with the transaction's
// inclusion proof put in the unprotected header by Attach; the unprotected
// header is not signed, so one signature serves every receipt.
//
// # Wire format
//
//	COSE_Sign1_Tagged = #6.18([                       ; tag 18, array of 4
//	┌──────────────────────────────────────────────────────────────────────┐
//	│ protected: bstr .cbor {                       ; signed               │
//	│     1 (alg): -7 ES256 | -35 ES384 | -36 ES512 ; from the key's curve │
//	│     4 (kid): bstr(32) SHA-256(DER SubjectPublicKeyInfo)              │
//	│   395 (vds): 1 RFC9162_SHA256                                        │
//	│ }                                                                    │
//	├──────────────────────────────────────────────────────────────────────┤
//	│ unprotected: {                                ; not signed           │
//	│   396 (vdp): {                                ; absent in a signed   │
//	│     -1 (inclusion proofs): [                  ; root, exactly one    │
//	│       bstr .cbor [                            ; proof in a receipt   │
//	│         tree_size:  uint,                     ; ≥ 1                  │
//	│         leaf_index: uint,                     ; 0-based, < tree_size │
//	│         inclusion_path: [* bstr(32)]          ; leaf to root order   │
//	│       ]                                                              │
//	│     ]                                                                │
//	│   }                                                                  │
//	│ }                                                                    │
//	├──────────────────────────────────────────────────────────────────────┤
//	│ payload: nil                                  ; detached: the root   │
//	├──────────────────────────────────────────────────────────────────────┤
//	│ signature: bstr                               ; r ‖ s, RFC 9053 §2.1 │
//	└──────────────────────────────────────────────────────────────────────┘
//	])
//
// The signature is over the RFC 9052 Sig_structure with the detached payload
// supplied by the verifier:
//
//	["Signature1", protected (the exact bytes), h'' (no external aad), root(32)]
//
// # Verification
//
// Verify decodes the message (within MaxReceiptSize and fixed CBOR limits),
// requires a detached payload, alg ES256/ES384/ES512 matching the service
// key's curve, vds = 1, a kid (if present) equal to the service key id, and
// exactly one inclusion proof whose shape fits its tree_size and leaf_index;
// it then recomputes the root from the leaf hash and the path with
// transparency-dev/merkle's RFC 9162 algorithm and checks the signature over
// that root with go-cose. There is no root in the receipt to compare with:
// a leaf or a path hash wrong in any bit yields another root, and the
// signature fails.
//
// What a receipt proves: the leaf, hence its write set digest, commit
// evidence and claims digest, is in the tree whose root the service signed.
// It does not prove where: RFC 9942 signs only the root, and tree_size and
// leaf_index travel unsigned. Another (tree_size, leaf_index) pair on which
// the RFC 9162 algorithm does the same hashing — the same low bits of the
// index below the level where the paths to the leaf and to the last leaf
// meet, and the same number of hashes above it — recomputes the same root and
// verifies too (13 -> 14 in the tree size for leaf 5, or leaf 21 of 25
// relabelled leaf 37 of 41). Coco binds the position inside the leaf
// instead: its commit evidence is "ce:<view>.<seqno>:<64 hex>", so
// Receipt.Verify, after the cryptographic checks, requires the commit
// evidence to name transaction_id, and leaf_index to be its seqno - 1.
//
// Every error matches one of ErrMalformed, ErrUnsupported, ErrKeyMismatch,
// ErrProof, ErrSignature or ErrTxID under errors.Is. docs/receipts.md walks
// through verifying a receipt by hand.
//
// # JSON form
//
// GET /app/receipt serves a Receipt:
//
//	{
//	  "transaction_id": "2.15",
//	  "leaf_components": {
//	    "write_set_digest": "<64 lowercase hex>",
//	    "commit_evidence":  "ce:2.15:<64 lowercase hex>",
//	    "claims_digest":    "<64 lowercase hex>"
//	  },
//	  "cose_receipt": "<standard base64, padded>"
//	}
//
// ParseJSON is strict: no unknown, duplicate, differently capitalised or
// missing fields, no trailing data, exact hex, canonical base64 and commit
// evidence of the right shape.
//
// # Concurrency
//
// All functions are safe for concurrent use; they share no mutable state.
// A Receipt is a plain value: do not modify one while another goroutine
// reads it.
package receipt
