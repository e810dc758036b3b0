// Package sandbox creates and runs a local Coco network for development:
// a workspace with fresh identities (member0..2 with encryption keys,
// user0), one folder and one node.toml per node, and the nodes as child
// processes of the sandbox. The sandbox then governs the new service as
// its members would, through the same signed requests: the members
// acknowledge their membership, add user0 and open the service by
// proposal, and vote each joining node trusted.
//
// Workspace layout:
//
//	DIR/sandbox.json            {"service_cert", "nodes": [{"name", "rpc_address", "ledger_dir", "config"}]}
//	DIR/service_cert.pem        written by the first node at genesis
//	DIR/memberN_{cert,privk}.pem     N = 0, 1, 2: the consortium
//	DIR/memberN_enc_{pubk,privk}.pem their encryption keys (X25519)
//	DIR/user0_{cert,privk}.pem
//	DIR/node0/node.toml         the node's own configuration (restart by hand with `coco node start --config`)
//	DIR/node0/ledger/           ledger chunks
//	DIR/node0/data/             sealed secrets, durable view, bound rpc_address
//	DIR/node0/node.log          the node's structured log
//
// Running the sandbox again on the same workspace restarts the same service
// from its ledgers.
//
// Concurrency: Run blocks until its context ends or a node exits, then stops
// every child it started (SIGTERM, then SIGKILL after a grace period).
package sandbox
