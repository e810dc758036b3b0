// Package attest is the boundary to the trusted execution environment a node
// runs in: sealing secrets to the platform, and (for joining nodes) producing
// and verifying attestation evidence.
//
// Platforms:
//
//   - "virtual": no hardware. Sealing is NOT confidential: the sealed blob is
//     the plaintext behind a marker header, and the caller stores it in a
//     0600 file. It exists for development and tests and says so in every
//     blob and log line. Anyone who can read the node's data directory can read
//     its ledger secret and service key.
//
// Invariant: Unseal(Seal(p)) == p on the same platform instance; a blob
// sealed by one platform kind is refused by another.
//
// Concurrency: Platform implementations are safe for concurrent use.
package attest
