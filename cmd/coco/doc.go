// Command coco is the single Coco binary: node, sandbox, keygen, ledger
// audit, receipt verification and benchmarks.
//
// It only wires: every command parses its flags and calls into internal/
// packages, which hold the behaviour and its tests (cmd/coco's own tests run
// the built binary end to end).
package main
