// Package bench is the load generator behind `coco bench`: closed-loop
// clients write to the logging app of a running network over HTTPS and the
// run reports executed and committed throughput, latency percentiles and
// errors by code.
//
// Invariants: a run stops by itself after Config.Duration (plus a bounded
// drain of in-flight requests and, with WaitNone, a bounded wait for the last
// transaction to commit); samples that complete during the warm-up or after
// the end are not counted; every write uses a distinct id and a payload of
// exactly Config.Size bytes.
//
// Cost: the generator shares the machine with the nodes it measures, so each
// worker reuses one precomputed payload, owns its statistics (merged once at
// the end, no locks or shared counters on the hot path) and has its own
// HTTP/1.1 keep-alive connection (with Config.HTTP2, it shares an HTTP/2
// connection with Config.ClientsPerConn-1 other workers instead).
//
// Concurrency: Run is safe to call from one goroutine at a time per Config;
// it starts Config.Clients goroutines and returns only after all have ended.
package bench
