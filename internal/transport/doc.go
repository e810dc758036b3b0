// Package transport is the node-to-node channel of docs/replication.md
// §5. It carries raft messages between Coco nodes (Send, Handler) and
// forwards to the primary the writes that reach a backup (Forward,
// ForwardHandler). Ordering, retries and membership are raft's and the
// consensus layer's business; which requests to forward and how to
// execute them are the node's.
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
//     raft id of the verified certificate is the sender. It must be a
//     current peer (SetPeers), or every request is refused (403,
//     ErrUnknownSender) before its body is read: endorsement cannot be
//     revoked, so membership is what shuts out a removed node (its
//     certificate still chains to the service). A batch is refused whole
//     (403, ErrSpoofedSender) if any message's From is another id — a node
//     cannot speak for another — and (421, ErrMisdirected) if any To is
//     not this node.
//   - Client side: the peer's certificate must chain to the service
//     certificate and its key must be the raft id of the Peer dialled
//     (ErrNotEndorsed, ErrWrongPeer). Host names are not checked: a peer is
//     its key, and node addresses need not be in certificates. A refusal
//     aborts the handshake, is counted (PeerStats.HandshakeFailures) and
//     logged with the peer's address and the x509 error.
//
// SetPeers must therefore list a peer before its messages are accepted:
// a node added to the configuration is heard once every node's SetPeers
// includes it (raft retransmits what was refused meanwhile), and tests
// that play a peer with a raw client list it first. Refusals of a
// non-peer are counted (PeerStats.UnknownSender) and logged at warning
// level on the 1st, 2nd, 4th, 8th, ... of each node, since a removed
// node keeps trying.
//
// # Wire format: raft batches
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
// # Wire format: forwarded requests
//
// A write that reaches a backup is executed on the primary: the backup
// calls Forward, one HTTP/2 request POST /internal/forward with
// Content-Type application/x-coco-forward+cbor, on the connection its
// sender to the primary uses (a stream of its own: it neither waits for
// a batch nor holds one). The primary's ForwardHandler answers; the HTTP
// answer is 200 with the encoded ForwardedResponse whatever the
// application's status in it. A
// transport refusal is an error status with a text/plain explanation (a
// *RefusedError on the backup): 400 malformed or unsupported version, 403
// ErrUnknownSender, 413 too large, 415 wrong content type, 500 the
// handler's answer cannot be relayed, 501 no ForwardHandler.
//
// Both bodies are one CBOR map with small integer keys, in RFC 8949 core
// deterministic encoding (internal/detcbor), every key always present:
//
//	ForwardedRequest                    ForwardedResponse
//	+-----+-------------------------+   +-----+-------------------------+
//	| key | value                   |   | key | value                   |
//	+-----+-------------------------+   +-----+-------------------------+
//	|  0  | version      uint = 1   |   |  0  | version      uint = 1   |
//	|  1  | method       text token |   |  1  | status  uint 200..599   |
//	|  2  | path         text "/…"  |   |  2  | header  map text →      |
//	|  3  | raw query    text       |   |     |         [+ text]        |
//	|  4  | header  map text →      |   |  3  | body         bytes      |
//	|     |         [+ text]        |   +-----+-------------------------+
//	|  5  | body         bytes      |
//	|  6  | caller cert  bytes (DER)|   header: canonical names,
//	+-----+-------------------------+   one or more values each
//
// Request headers are Content-Type and Accept only; response headers are
// the handler's but for those of a connection (Connection, Content-Length,
// Transfer-Encoding, ...). Text is UTF-8 without control characters (tab
// allowed in header values); a path starts with "/"; a query holds no
// "#". Limits: MaxForwardBodyBytes (64 MiB) of body,
// MaxForwardMetaBytes (64 KiB) for everything else,
// MaxForwardHeaderFields (64) header values, MaxForwardWireBytes in all.
// The decoders (DecodeForwardedRequest, DecodeForwardedResponse) are
// strict — no unknown, missing or duplicate key, tag, indefinite length,
// trailing byte, or non-canonical form: what they accept re-encodes to
// the same bytes — allocate in proportion to the input, and are fuzzed.
// Key 0 is read first, so a later version is refused as such
// (ErrUnsupportedVersion) rather than as unknown keys.
//
// # Invariants
//
//   - A message handed to the Handler came over a connection whose client
//     certificate chains to the service certificate, and its From is the
//     raft id of that certificate's key; its To is the local id.
//   - A message handed to the Handler, and a request handed to the
//     ForwardHandler, came from a current peer (SetPeers); the
//     ForwardHandler's from is that peer's raft id.
//   - A message or forwarded request is never sent to a peer whose
//     certificate did not verify as that peer.
//   - Per peer, messages are sent in Send order, one batch in flight, and
//     a batch is delivered whole or not at all.
//   - Every message given to Send is, in the end, counted exactly once as
//     Sent or Dropped (a batch whose answer was lost counts as Dropped even
//     if the peer had it: raft tolerates both).
//   - Memory is bounded: QueueLen messages per peer (raft bounds their
//     size: MaxInflightMsgs × MaxSizePerMsg per follower), one batch of at
//     most MaxBatchBytes in flight per peer, at most maxHandshakes inbound
//     handshakes at a time. Inbound forwarded requests are read and held
//     within a byte budget shared by all peers (four at the largest;
//     more wait their turn, first come first served), whatever the
//     number of streams: a connection allows 256 concurrent streams, so
//     that a backup can relay many clients' writes at once over one
//     connection.
//
// # Concurrency contract
//
//   - Send, Forward, SetPeers, Stats and Close may be called from any
//     goroutine, concurrently. Send never blocks on the network: it only does
//     non-blocking channel sends under a read lock, so the consensus loop
//     can call it with the messages of a Ready.
//   - Forward blocks until the answer, an error, ctx is done, a minute
//     has passed, the peer is removed or the transport closes.
//   - SetPeers blocks until the senders of removed peers have stopped (an
//     in-flight request is cancelled, batch or forward). Close blocks until every goroutine
//     the transport started has returned: the senders, the accept loop,
//     the handshakes, the HTTP server, and the Handler calls in progress
//     (whose context it cancels), Forward calls included. Calls after
//     Close do nothing (Send counts drops, Forward returns ErrClosed).
//   - TLS goroutines: one sender per peer (encodes and posts batches,
//     backs off after a failure up to a second), one accept loop, one per
//     inbound handshake in progress, the HTTP server's. The Handler is
//     called from an HTTP/2 stream goroutine: concurrently for different
//     peers, one batch at a time per sending peer. The ForwardHandler
//     too, once per forwarded request, concurrently with everything.
//   - MemNetwork starts no goroutine. Handlers run in the goroutine that
//     calls Deliver or DeliverOne, without any lock held, so a handler may
//     Send (delivered at the next call). Forward is synchronous: the
//     recipient's ForwardHandler runs in the caller's goroutine, without
//     any lock held, and no Deliver is needed; it fails with
//     ErrUnreachable across a partition or isolation (decided at the
//     call; DropRate does not apply). All its methods are safe for
//     concurrent use, but determinism needs one goroutine driving it.
package transport
