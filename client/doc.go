// Package client is the Go SDK for a Coco service: it talks to one node's
// HTTPS API as a user (or member) identified by a TLS client certificate.
//
// A Client pins the service certificate as its only root of trust: the node's
// TLS certificate must be endorsed by the service identity, so a client
// cannot be talked to by anything that is not a node of that service, and no
// system root CA is ever consulted. Connections use TLS 1.3 and HTTP/2; one
// Client multiplexes all its concurrent calls over its own connection(s).
//
// Writes return as soon as the transaction has executed, with its TxID; a
// caller that needs durability either asks the node to hold the answer until
// commit (WriteOptions.WaitCommit) or calls WaitCommitted afterwards. Only
// committed transactions have receipts: Receipt answers ErrPending until then.
//
// Errors: every non-2xx answer is a *APIError carrying the HTTP status and the
// node's stable error code, wrapped with the method and path. Sentinels
// (ErrConfig, ErrPending, ErrInvalid, ErrNotFound, ErrBadResponse, ErrBadScope)
// are matched with errors.Is.
//
// Concurrency: a Client is safe for concurrent use by any number of
// goroutines and should be reused; creating one per call defeats connection
// reuse.
package client
