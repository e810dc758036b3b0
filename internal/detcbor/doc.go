// Package detcbor holds the CBOR modes shared by Coco's binary formats
// (signature records, evidence bundles, virtual evidence): deterministic
// encoding (RFC 8949 §4.2.1 core deterministic encoding) and a strict,
// bounded decoder that refuses duplicate keys, indefinite lengths, tags and
// unknown fields.
//
// The decoder still tolerates encodings that deterministic CBOR never
// produces (non-minimal lengths, unsorted keys); every format therefore
// re-encodes what it decoded and compares, so each value has exactly one
// accepted encoding.
//
// Concurrency: modes are immutable and safe for concurrent use.
package detcbor
