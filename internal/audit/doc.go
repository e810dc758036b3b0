// Package audit verifies a ledger directory offline, with nothing but the
// files and (optionally) the service certificate: every entry decodes with
// a valid checksum and contiguous seqnos, every public write set decodes,
// every signature entry's root equals the Merkle root recomputed from the
// entries before it and its COSE signature verifies under the service key,
// and the node certificate in it is endorsed by the service.
//
// The service certificate is taken from the genesis transaction when none is
// given (trust on first use); when one is given, the genesis must name it.
//
// Any failure is reported as an *Error naming the file, the byte offset and
// the seqno. Private write sets cannot be decrypted offline; their integrity
// is covered by the checksum, the Merkle leaf (write set digest) and the
// signatures.
//
// Concurrency: Verify is a pure function of its inputs; call it from any
// goroutine.
package audit
