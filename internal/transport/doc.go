// Package transport is the node-to-node channel of docs/replication.md
// §5. It carries raft messages between Coco nodes (Send, Handler) and
// forwards to the primary the writes that reach a backup (Forward,
// ForwardHandler). Ordering, retries and membership are raft's and the
// consensus layer's business; which requests to forward and how to
// execute them are the node's.
//
// Two implementations of Transport:
//
//   - TLS (NewTLS): mutual TLS 1.3 between nodes and a framed stream
//     protocol over it, for real networks.
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
//     service certificate, and ALPN "coco-node/1"; a client whose
//     certificate does not chain to it, or that does not speak the
//     protocol, fails the handshake, which is counted
//     (Stats.InboundHandshakeFailures) and logged (the x509 error and the
//     presented key's node id at warning level, the rest at debug). The
//     raft id of the verified certificate is the sender. It must be a
//     current peer (SetPeers): the connection is refused at its start
//     (goodbye 403, ErrUnknownSender) before anything is read, every
//     frame is checked again, and SetPeers cuts the connections of a
//     peer it removes (goodbye 403): endorsement cannot be revoked, so
//     membership is what shuts out a removed node (its certificate still
//     chains to the service). A batch is refused whole, and the
//     connection with it, (403, ErrSpoofedSender) if any message's From
//     is another id — a node cannot speak for another — and (421,
//     ErrMisdirected) if any To is not this node.
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
// node keeps redialling.
//
// # Wire format: connections and frames
//
// Each node dials one connection to each peer it sends to, owned by that
// peer's sender; between two nodes there are thus two connections, one
// per direction. The dialling node (the sender) writes raft batches,
// forwarded requests and cancels; the accepting node (the receiver)
// writes the answers, refusals, hello and goodbye. The ALPN protocol
// "coco-node/1" names the version of everything below: a change is a new
// ALPN name, and a node that speaks none of the dialler's fails the
// handshake (counted, logged) rather than misread frames.
//
// A connection is a sequence of frames, all integers unsigned big-endian:
//
//	 0       1                  5
//	+-------+------------------+--------------------------+
//	| kind  | length           | payload                  |
//	| u8    | u32              | (length bytes)           |
//	+-------+------------------+--------------------------+
//
// The kinds, their direction and their payload (a reader refuses a kind
// that does not travel its way, and a length outside the bounds given):
//
//	kind 1  batch      sender → receiver    length ≤ MaxBatchBytes
//	+----------------------------------------------+
//	| raft batch (below)                           |
//	+----------------------------------------------+
//
//	kind 2  forward    sender → receiver    8 ≤ length ≤ 8 + MaxForwardWireBytes
//	kind 3  answer     receiver → sender    8 ≤ length ≤ 8 + MaxForwardWireBytes
//	+--------------+-------------------------------+
//	| id  u64      | ForwardedRequest (kind 2) or  |
//	|              | ForwardedResponse (kind 3),   |
//	|              | CBOR (below)                  |
//	+--------------+-------------------------------+
//
//	kind 4  refusal    receiver → sender    10 ≤ length ≤ 10 + 1024
//	+--------------+------------+------------------+
//	| id  u64      | status u16 | text (UTF-8)     |
//	+--------------+------------+------------------+
//
//	kind 5  cancel     sender → receiver    length = 8
//	+--------------+
//	| id  u64      |
//	+--------------+
//
//	kind 6  goodbye    receiver → sender    2 ≤ length ≤ 2 + 1024
//	+------------+---------------------------------+
//	| status u16 | text (UTF-8)                    |
//	+------------+---------------------------------+
//
//	kind 7  hello      receiver → sender    length = 0
//
// A connection starts, after the handshake, with the receiver's hello,
// or its goodbye if it refuses the sender; the sender writes nothing
// before, so a refused connection loses nothing counted as sent, and a
// client certificate refused by the receiver shows at the dial. Statuses
// are refusal codes numbered as HTTP statuses (RefusedError.Status): 400
// malformed, 403 ErrUnknownSender or ErrSpoofedSender, 413 too large,
// 421 ErrMisdirected, 500 an answer that cannot be relayed, 501 no
// ForwardHandler, 503 too busy (retry). Texts are at most 1024 bytes.
//
// A goodbye refuses the connection: the sender is not a current peer
// (at the start, on any frame, or cut by SetPeers), a batch is refused
// (malformed, ErrSpoofedSender, ErrMisdirected), or a frame breaks the
// protocol (ErrMalformedFrame; a length over its kind's bound, 413, is
// refused from the header, before any of the payload is read). The
// receiver then writes nothing more, reads and discards what still
// comes, for up to two seconds, until the sender closes (closing with
// unread bytes would reset the connection, and could destroy the
// goodbye), and closes. The sender reports it as a *RefusedError (Kind
// RefusedConnection), fails the forwards in flight on the connection with
// it, counts the raft messages not flushed as dropped, logs it (warning
// level when it differs from the last failure) and redials after its
// backoff.
//
// Forwards are multiplexed by id, which the sender picks (never reused
// on a connection) and the receiver echoes in the answer (3) or refusal
// (4); a refusal concerns that request only: malformed (400, 413), no
// ForwardHandler (501), the handler's answer cannot be relayed (500), no
// room in the forward budget (503). A cancel (5) says the sender's caller
// gave up: the receiver cancels that ForwardHandler call's context and
// sends nothing for it; an id it does not know (answered meanwhile) is
// ignored. An id reused while in flight breaks the protocol.
//
// A reader never allocates what a header claims: a payload is read into
// a buffer that grows as the bytes arrive. The frame decoder is fuzzed
// (FuzzReadFrame) with the batch and forward decoders.
//
// # Wire format: raft batches
//
// The payload of a batch frame:
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
// The whole payload is at most MaxBatchBytes; nothing may follow the last
// message. The decoder (DecodeBatch) checks every length against the bytes
// left before it slices, allocates in proportion to the input whatever the
// counts claim, and is fuzzed. A change of format is a new version byte; a
// node refuses versions it does not speak (ErrUnsupportedVersion, 400),
// and raft retransmits once both ends speak the same one. A sender fills
// a batch frame with what is queued up to MaxBatchMessages and 4 MiB, so
// that a forward waits behind at most one such frame; a message larger
// than that goes alone, one larger than MaxBatchBytes is dropped.
//
// # Wire format: forwarded requests
//
// A write that reaches a backup is executed on the primary: the backup
// calls Forward, which writes a forward frame on the connection its
// sender to the primary uses, ahead of the raft messages queued there,
// and waits for the answer frame. The primary's ForwardHandler answers
// with the application's status, whatever it is; a transport refusal is
// a refusal frame (a *RefusedError, Kind RefusedForward, on the backup).
//
// Both, after the frame's id, are one CBOR map with small integer keys, in RFC 8949 core
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
//     ForwardHandler, came from a current peer (SetPeers), checked when
//     its frame was read; the ForwardHandler's from is that peer's raft
//     id. Once SetPeers has removed a peer, no Handler call for it is in
//     progress, no ForwardHandler call for it starts, and those in
//     progress have their context cancelled.
//   - A message or forwarded request is never sent to a peer whose
//     certificate did not verify as that peer and that did not accept the
//     connection (hello).
//   - Per peer, messages are sent in Send order over one connection at a
//     time, written by one goroutine, and delivered in that order; a
//     batch is delivered whole or not at all.
//   - Every message given to Send is, in the end, counted exactly once as
//     Sent (written and flushed to the peer's connection) or Dropped.
//     There is no acknowledgement: a message flushed and then lost with
//     its connection, or refused by the peer, counts as Sent; raft
//     tolerates both.
//   - Memory is bounded: QueueLen messages per peer (raft bounds their
//     size: MaxInflightMsgs × MaxSizePerMsg per follower), one batch
//     being encoded or decoded per connection (at most MaxBatchBytes), a
//     64 KiB write buffer and a 32 KiB read buffer per connection, at
//     most maxHandshakes inbound handshakes at a time. Inbound forwarded
//     requests, from their frame's header until their answer is written,
//     hold a byte budget shared by all peers (four at the largest,
//     thousands of usual size); a request that does not fit is refused
//     (503) rather than waited for, because the connection's reader
//     cannot stop without stalling the raft messages behind it. Any
//     number of forwards may be in flight on a connection.
//
// # Concurrency contract
//
//   - Send, Forward, SetPeers, Stats and Close may be called from any
//     goroutine, concurrently. Send never blocks on the network: it only
//     does non-blocking channel sends under a read lock, so the consensus
//     loop can call it with the messages of a Ready.
//   - Forward blocks until the answer, an error, ctx is done, a minute
//     has passed, the connection its request was written to is lost, the
//     peer is removed or the transport closes. Without a connection it
//     has the sender dial at once, whatever raft's backoff, and fails
//     with that dial's error (ErrUnreachable, *HandshakeError,
//     *RefusedError) rather than wait for a peer that is down. When ctx
//     is done it sends a cancel (best effort).
//   - SetPeers blocks until the senders of removed peers have stopped
//     (their connection closed, the Forwards to them returned) and their
//     inbound connections have been cut: goodbye queued, no Handler call
//     for them in progress (whose context it cancels), no ForwardHandler
//     call started. It cancels the context of their ForwardHandler calls
//     in progress but does not wait for them, so that a ForwardHandler
//     may call SetPeers. Close blocks until every goroutine the transport
//     started has returned: the senders and their readers, the accept
//     loop, the inbound connections' readers, writers and ForwardHandler
//     calls, and the Handler calls in progress (whose context it
//     cancels), Forward calls included. Calls after Close do nothing
//     (Send counts drops, Forward returns ErrClosed).
//   - TLS goroutines, each with its way to stop:
//     one sender per peer (run): dials when there is something to send,
//     then is the connection's one writer, backs off after a failure (20
//     ms doubling up to a second; a queued forward cuts the wait short);
//     it stops with its context (SetPeers, Close), which closes its
//     connection. One reader per outbound connection (sender.read): hands
//     answers and refusals to their Forwards; started and waited for by
//     run, it stops when the connection closes. One accept loop: stops
//     when the listener closes. One goroutine per inbound connection:
//     the handshake (bounded by maxHandshakes and a timeout), then the
//     connection's reader, which calls the Handler itself — concurrently
//     for different peers, one batch at a time per connection, in order —
//     and starts the rest; it stops when the connection fails, is
//     refused or cut, or at Close, which closes it. One writer per
//     inbound connection (inConn.write), and one goroutine per
//     ForwardHandler call in progress, concurrent with everything: the
//     reader waits for both before it returns.
//   - Writes coalesce: a connection's writer takes everything queued (the
//     peer's raft queue and forward frames; answers on an inbound
//     connection), encodes it into a 64 KiB buffer, and flushes only when
//     nothing more is queued, after yielding once to let the goroutines
//     that are ready queue theirs. Under load many frames share one TLS
//     record and one write system call. A write that does not complete
//     within 30 seconds fails the connection, which is redialled.
//   - MemNetwork starts no goroutine. Handlers run in the goroutine that
//     calls Deliver or DeliverOne, without any lock held, so a handler may
//     Send (delivered at the next call). Forward is synchronous: the
//     recipient's ForwardHandler runs in the caller's goroutine, without
//     any lock held, and no Deliver is needed; it fails with
//     ErrUnreachable across a partition or isolation (decided at the
//     call; DropRate does not apply). All its methods are safe for
//     concurrent use, but determinism needs one goroutine driving it.
package transport
