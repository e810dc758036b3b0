// Package app holds what runs inside a node on behalf of users: the endpoint
// registry, authentication policies, the error model every endpoint answers
// with, and the built-in apps (the logging app).
//
// A handler runs against a kv.Tx snapshot. It must not keep the Tx or the
// Context after it returns, and it may be run more than once for one request
// (optimistic concurrency re-runs it on conflict), so it must not have side
// effects outside the Tx. Handlers may be non-deterministic: only the primary
// runs them; backups apply the resulting write sets.
//
// Concurrency: a Registry is built once at start and read-only afterwards;
// each Context is used by one goroutine.
package app
