// Package constitution runs Coco's programmable governance: the
// constitution, a JavaScript ES module stored in the ledger that decides
// the members' proposals, and the members' JS ballots.
//
// A constitution exports three functions:
//
//   - validate(input): input is the proposal's JSON text,
//     {"actions": [{"name": …, "args": {…}}]}. Pure: it gets no KV. It
//     returns {valid: boolean, description: string}.
//   - resolve(proposal, proposerId, votes): proposal is the JSON text,
//     proposerId the proposer's member id, votes an array of
//     {member_id: string, vote: boolean}. Read-only. It returns "Open",
//     "Accepted" or "Rejected".
//   - apply(proposal, proposalId): performs the actions of an accepted
//     proposal by writing governance tables and calling node actions.
//
// A ballot exports vote(proposal, proposerId) returning a boolean. It is
// evaluated when the proposal is resolved, read-only, so that it judges the
// state the decision is made in; the caller turns each ballot into a Vote
// (Ballot.Vote) and passes the votes to Resolve.
//
// The Go API: Compile and CompileBallot transform a module (esbuild, since
// the engine, goja, has no ES modules), compile it, and evaluate its top
// level once to check its exports. Compiled programs are cached by SHA-256
// of the source (LRU, 256 entries), so compiling the constitution in force
// again is cheap. Constitution.Validate, Resolve and Apply and Ballot.Vote
// each run in a fresh goja runtime: the module's top level, then the
// export. DefaultSource and VetoSource are the two constitutions shipped
// with Coco (default.js, veto.js).
//
// # The JS API
//
// Besides the ECMAScript built-ins, a script sees one global, coco:
//
//   - coco.kv.get(table, key): the value (a string) or undefined.
//   - coco.kv.keys(table): the keys, ascending.
//   - coco.kv.forEach(table, fn): calls fn(key, value) for every entry,
//     ascending.
//   - coco.kv.set(table, key, value), coco.kv.delete(table, key): apply
//     only, and not inside forEach. Table, key and value must be strings.
//   - coco.host(action, args): apply only. The caller's Host performs the
//     node action (see below) with JSON.stringify(args).
//   - coco.sha256hex(s): lowercase hex SHA-256 of s's UTF-8 bytes.
//   - coco.parsePEMCertID(pem): the member or user id of a PEM X.509
//     certificate, the lowercase hex SHA-256 of its DER (ids.Fingerprint).
//   - coco.parsePEMPublicKey(pem): the algorithm of a PEM PKIX public key:
//     "X25519", "P-256", "P-384", "P-521", "Ed25519" or "RSA".
//   - coco.checkConstitution(src): throws unless src compiles as a
//     constitution (not at a module's top level, which compiling runs).
//
// A refused use throws a TypeError naming the function and the reason: KV
// access at a module's top level or in validate, a write outside apply
// ("read-only during resolve"), a read of a table not starting with
// "public:" (governance must be re-verifiable from the public ledger), a
// write to a table not starting with "public:coco.gov.". An import throws
// too: a module is one self-contained source.
//
// Node actions. Actions that need the node rather than a table write are
// calls of coco.host: the default constitution sends
// transition_service_to_open, transition_node_to_trusted, remove_node,
// set_service_configuration and trigger_ledger_rekey there, with the
// proposal's args. The node implements Host; its effects, like the KV
// writes, belong to the caller's transaction, which the caller discards if
// Apply fails. A Host or KV error stops the script (it cannot catch it) and
// Apply returns it wrapped; with a nil Host, coco.host fails with ErrNoHost.
//
// # Determinism
//
// Given the same source, arguments and KV state, a call returns the same
// result on every node and in an offline audit, except when a limit stops
// it. Scripts get no clock and no randomness: Date is removed (even with
// arguments it reads the host's time zone), Math.random throws, and
// WeakRef and FinalizationRegistry, which expose garbage collection, are
// removed where the engine has them. Reads are limited to public tables.
//
// # Limits
//
// A constitution or ballot must not hang or crash a node. Every call runs
// under Limits (Time, MaxHeapGrowth, MaxCallStackSize; defaults 1s, 64 MiB,
// 1024) and the caller's context; a watchdog goroutine interrupts the
// runtime (goja's Interrupt, uncatchable by the script) when the time limit
// passes, the context ends, or the heap grows past the limit. The stack
// limit is goja's own call depth limit. A stopped call returns *LimitError
// naming the kind and where the script was; the context's error is returned
// wrapped. The next call is unaffected: it has its own runtime.
//
// Approximations, which the caller must know:
//
//   - Memory is the process's, not the runtime's: goja cannot account
//     memory per runtime. The watchdog samples the heap every millisecond
//     (runtime/metrics); when it has grown by MaxHeapGrowth since the call
//     began it forces a GC and stops the script if the live heap that
//     survived is still that much larger. Garbage is thus never held
//     against a script (at the cost of at most one forced GC per
//     MaxHeapGrowth/2 allocated), but whatever other goroutines retain
//     meanwhile is. Governance calls are serialised by the caller; calls
//     running concurrently share one heap and may stop each other.
//   - An interrupt takes effect at the script's next instruction, never
//     inside a built-in. String.prototype.repeat, padStart and padEnd, which
//     build a string of any size from a tiny input, are guarded: a result
//     larger than MaxHeapGrowth stops the script first. Other built-ins
//     that do work proportional to a product of their inputs are not
//     guarded, e.g. new Array(1e9).join("x") or Array.from({length: 1e9}):
//     such a call cannot be stopped until it returns, and may exhaust the
//     node's memory before it does. The defence there is accountability:
//     the constitution is adopted by the members' vote, and every ballot is
//     signed by its member and recorded in the ledger.
//   - Limits make results timing-dependent at their edges; they are set
//     well above what honest governance needs. Go runtime failures (out of
//     memory, a Go stack overflow) are fatal to the process and cannot be
//     recovered; the limits exist to keep scripts away from them.
//
// # Invariants
//
//   - A call's runtime is never shared: no state survives from one call to
//     the next, and a panic or interrupt in one cannot affect another.
//   - Only apply writes, only to tables starting with "public:coco.gov.",
//     and only through KV.Put and KV.Delete; validate reads nothing, resolve
//     and ballots read only.
//   - Compile and CompileBallot return a module only after its top level ran
//     and its required exports were found to be functions.
//   - Resolve refuses two votes of one member (ErrDuplicateVote); Resolve,
//     Apply and Ballot.Vote refuse a proposal that is not JSON
//     (ErrBadProposal); Validate calls it invalid without running the
//     script. encoding/json's nesting limit thus also bounds what the
//     script's JSON.parse must handle.
//
// Errors: sentinels are prefixed "constitution:". *CompileError matches
// ErrCompile, *ScriptError (the JS exception's message and position, in the
// source as written, via the transform's source map) matches ErrScript,
// *LimitError matches ErrLimit; an export returning the wrong shape gives
// ErrBadResult; a recovered engine panic gives ErrPanic.
//
// Concurrency: *Constitution and *Ballot are immutable and safe for
// concurrent use; each call owns its runtime and runs on the caller's
// goroutine, plus a watchdog goroutine that ends before the call returns.
// The KV and Host are called only from the caller's goroutine, during the
// call. The program cache is safe for concurrent use.
package constitution
