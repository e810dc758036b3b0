// Package ids defines the identifier types shared across Coco: transaction ids
// (view.seqno), node, member and user ids.
//
// Invariants: a TxID with Seqno 0 is the zero value and never names a ledger
// entry; views and seqnos start at 1. Member and user ids are the lowercase hex
// SHA-256 of the DER certificate; node ids are the lowercase hex SHA-256 of the
// node's DER public key.
//
// Concurrency: all types are immutable values, safe for use from any goroutine.
package ids
