// Package crypto holds Coco's identities and ledger encryption: P-256 key
// pairs, self-signed member/user/service certificates, node certificates
// endorsed by the service identity, PEM encoding, and ledger secrets that
// encrypt the private part of every ledger entry and derive commit evidence.
//
// Everything here is built from the standard library (crypto/ecdsa,
// crypto/x509, crypto/aes, crypto/cipher, crypto/hkdf, crypto/hmac); nothing
// is hand-rolled.
//
// Entry encryption: AES-256-GCM under the ledger secret with a 12-byte nonce
// derived from the transaction id:
//
//	+----------------------+--------------------------------------+
//	| view (u32, BE)       | seqno (u64, BE)                      |
//	+----------------------+--------------------------------------+
//	  0                  4                                     12
//
// Invariant: a (view, seqno) pair is used for at most one plaintext under one
// secret. The ledger guarantees it: seqnos never repeat within a view, and a
// node never reuses a view (the view is made durable before it is used).
// Views above 2^32-1 are refused rather than wrapped.
//
// Commit evidence for a transaction is the string "ce:<view>.<seqno>:<hex>"
// where <hex> is HMAC-SHA256 over "<view>.<seqno>" under a key derived with
// HKDF from the ledger secret. Only its SHA-256 is in the Merkle leaf until
// the transaction commits, so nobody can build a receipt for a transaction
// that was rolled back.
//
// Concurrency: LedgerSecret is immutable after construction and safe for
// concurrent use. Private keys are never compared with ==; use Equal methods.
package crypto
