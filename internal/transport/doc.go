// Package transport carries raft messages between Coco nodes: the
// node-to-node channel of docs/replication.md §5. It moves
// raftpb.Messages and nothing else; ordering, retries and membership are
// raft's and the consensus layer's business.
//
// Two implementations of Transport:
//
//   - TLS (NewTLS): mutual TLS 1.3 and HTTP/2 between nodes, for real
//     networks.
//   - MemNetwork (NewMemNetwork, Join): in-process and driven by the test,
//     with partitions, isolation and seeded random drops, for
//     deterministic whole-network tests.
//
// # Identities
//
// A node's raft id is a pure function of its node id (RaftID): the first 8
// bytes, big-endian, of the SHA-256 of its DER public key, 0 mapped to 1.
// So a certificate alone says which raft node speaks, on both ends of a
// connection, and no table maps one to the other. Collisions among a
// handful of nodes are negligible (n²/2^65) and are to be refused at join.
//
// Every node presents its node certificate, endorsed by the service
// identity, as TLS server and as TLS client:
//
//   - Server side: tls.RequireAndVerifyClientCert with ClientCAs = the
//     service certificate; a client whose certificate does not chain to it
//     fails the handshake, which is counted (Stats.InboundHandshakeFailures)
//     and logged with the x509 error and the presented key's node id. The
//     raft id of the verified certificate is the sender: a batch is refused
//     whole (403, ErrSpoofedSender) if any message's From is another id —
//     a node cannot speak for another — and (421, ErrMisdirected) if any
//     To is not this node.
//   - Client side: the peer's certificate must chain to the service
//     certificate and its key must be the raft id of the Peer dialled
//     (ErrNotEndorsed, ErrWrongPeer). Host names are not checked: a peer is
//     its key, and node addresses need not be in certificates. A refusal
//     aborts the handshake, is counted (PeerStats.HandshakeFailures) and
//     logged with the peer's address and the x509 error.
//
// # Wire format
//
// One HTTP/2 request per batch: POST /internal/raft, Content-Type
// application/x-coco-raft-batch; the answer is 204 No Content once the
// receiver's Handler returned, or an error status with a text/plain
// explanation. The body, all integers unsigned big-endian:
//
//	 0         1                   5
//	+---------+-------------------+
//	| version | count             |   batch header: version = 1,
//	| u8      | u32               |   1 ≤ count ≤ MaxBatchMessages
//	+---------+-------------------+-------------------------------+
//	| length  u32                 | raftpb.Message                |
//	|                             | (protobuf, length bytes)      |  × count
//	+-----------------------------+-------------------------------+
//
// The whole body is at most MaxBatchBytes; nothing may follow the last
// message. The decoder (DecodeBatch) checks every length against the bytes
// left before it slices, allocates in proportion to the input whatever the
// counts claim, and is fuzzed. A change of format is a new version byte; a
// node refuses versions it does not speak (ErrUnsupportedVersion, 400),
// and raft retransmits once both ends speak the same one.
//
// # Invariants
//
//   - A message handed to the Handler came over a connection whose client
//     certificate chains to the service certificate, and its From is the
//     raft id of that certificate's key; its To is the local id.
//   - A message is never sent to a peer whose certificate did not verify
//     as that peer.
//   - Per peer, messages are sent in Send order, one batch in flight, and
//     a batch is delivered whole or not at all.
//   - Every message given to Send is, in the end, counted exactly once as
//     Sent or Dropped (a batch whose answer was lost counts as Dropped even
//     if the peer had it: raft tolerates both).
//   - Memory is bounded: QueueLen messages per peer (raft bounds their
//     size: MaxInflightMsgs × MaxSizePerMsg per follower), one batch of at
//     most MaxBatchBytes in flight per peer, at most maxHandshakes inbound
//     handshakes at a time.
//
// # Concurrency contract
//
//   - Send, SetPeers, Stats and Close may be called from any goroutine,
//     concurrently. Send never blocks on the network: it only does
//     non-blocking channel sends under a read lock, so the consensus loop
//     can call it with the messages of a Ready.
//   - SetPeers blocks until the senders of removed peers have stopped (an
//     in-flight request is cancelled). Close blocks until every goroutine
//     the transport started has returned: the senders, the accept loop,
//     the handshakes, the HTTP server, and the Handler calls in progress
//     (whose context it cancels). Calls after Close do nothing (Send
//     counts drops).
//   - TLS goroutines: one sender per peer (encodes and posts batches,
//     backs off after a failure up to a second), one accept loop, one per
//     inbound handshake in progress, the HTTP server's. The Handler is
//     called from an HTTP/2 stream goroutine: concurrently for different
//     peers, one batch at a time per sending peer.
//   - MemNetwork starts no goroutine. Handlers run in the goroutine that
//     calls Deliver or DeliverOne, without any lock held, so a handler may
//     Send (delivered at the next call). All its methods are safe for
//     concurrent use, but determinism needs one goroutine driving it.
package transport
