package transport

import (
	"context"
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3/raftpb"
)

// DefaultQueueLen is the per-peer queue length when none is configured.
const DefaultQueueLen = 4096

// Handler receives messages for the local raft node. The consensus layer
// calls RawNode.Step for each under its own lock. Calls may be concurrent
// (one per sending peer) and must not block for long: the connection's
// reader waits for the call to return before it reads the next frame, so
// a slow call delays that peer's later messages and forwarded requests.
// ctx is cancelled when the connection ends, the sender is removed by
// SetPeers or the transport closes. The messages are the handler's to
// keep.
type Handler func(ctx context.Context, msgs []raftpb.Message)

// ForwardHandler executes, on the primary, a request that reached a
// backup, and returns the answer to relay. from is the raft id of the
// sending node, proven by its certificate and a current peer. ctx is
// cancelled when the sending node gives up (its caller's context, a
// timeout, the connection lost) or the transport closes: the handler must
// then return promptly, with any response (it is not delivered).
//
// Calls are concurrent: one per forwarded request in flight, from any
// number of peers. req is the handler's to keep. The handler must return
// a non-nil response that EncodeForwardedResponse accepts (a final status,
// valid headers, bounded sizes); otherwise the sender gets a refusal (500)
// rather than an answer. An application error is a response with its
// status, not a refusal.
type ForwardHandler func(ctx context.Context, from uint64, req *ForwardedRequest) *ForwardedResponse

// Peer is a raft node the transport sends to: its raft id (see RaftID)
// and its node_address (host:port).
type Peer struct {
	ID      uint64
	Address string
}

// Transport carries raft messages between nodes, and forwards requests
// from a backup to the primary.
type Transport interface {
	// Send queues msgs for their recipients (msg.To) and returns at once.
	// A message to an unknown peer, or that finds its peer's queue full,
	// is dropped and counted: raft retransmits. The caller must not
	// modify the messages after Send (raft does not).
	Send(msgs []raftpb.Message)
	// SetPeers replaces the set of peers. The local node may be listed (it
	// is skipped). A removed peer's queue is stopped before SetPeers
	// returns and its queued messages are counted as dropped; a peer whose
	// address changed is removed and added again.
	//
	// The peer set is also who may speak to this node: batches and
	// forwarded requests from a node that is not listed are refused (403,
	// ErrUnknownSender), so a removed node is cut off even though its
	// certificate stays endorsed, and a new node is heard only once it is
	// listed here (raft retransmits what was refused before).
	SetPeers(peers []Peer)
	// Forward sends req to peer to (the primary) and waits for its
	// ForwardHandler's answer, which it returns whatever its status. It
	// is synchronous and independent of Send: a forward waits neither for
	// raft's backoff after a failure nor behind queued raft messages
	// (TLS: at most behind the one batch frame being written). Errors:
	// ErrUnknownPeer (to is not a current peer), ErrClosed, ErrBadForward
	// or ErrForwardTooLarge (req cannot be encoded, or the answer is
	// malformed), ctx's error once it is done, a *RefusedError (the peer
	// refused: e.g. 403 ErrUnknownSender, 501 no ForwardHandler), a
	// *HandshakeError (the peer's certificate is not that peer's), and
	// otherwise ErrUnreachable wrapping the cause. After an error the
	// request may or may not have been executed: only the answer says.
	Forward(ctx context.Context, to uint64, req *ForwardedRequest) (*ForwardedResponse, error)
	// Stats returns the counters since the transport was made.
	Stats() Stats
	// Close stops every goroutine the transport started and returns when
	// they have exited. It is idempotent; Send after Close drops.
	Close() error
}

// Stats are a transport's counters, for metrics and tests. They only grow.
type Stats struct {
	// Peers holds the counters per raft id of every node messages or
	// forwarded requests were sent to or received from, including unknown
	// and removed ones.
	Peers map[uint64]PeerStats
	// InboundHandshakeFailures counts inbound connections refused during
	// the TLS handshake (no certificate, a certificate the service did not
	// endorse, no ALPN "coco-node/1", a broken handshake): there is no
	// raft id to charge them to.
	InboundHandshakeFailures uint64
}

// PeerStats are the counters for one peer.
type PeerStats struct {
	// Sent counts messages handed to the peer (TLS: written and flushed to
	// its connection; there is no acknowledgement, and a message the peer
	// then refused or lost with the connection stays counted here, as
	// raft tolerates and repairs loss; mem: handed to its handler).
	Sent uint64
	// Dropped counts messages to the peer that were not handed over:
	// unknown peer, full queue, too large, failed connection, written
	// but not flushed when the connection failed, peer removed or
	// transport closed (mem: partition, random drop, peer gone).
	Dropped uint64
	// Received counts messages from the peer handed to the local Handler.
	Received uint64
	// RefusedBatches counts batch frames from the peer that were refused
	// whole: malformed, too large, a message From another node
	// (ErrSpoofedSender) or To another node (ErrMisdirected). The
	// connection is then closed (a goodbye frame).
	RefusedBatches uint64
	// HandshakeFailures counts connections to the peer refused because its
	// certificate is not endorsed by the service or names another raft id.
	HandshakeFailures uint64

	// Forwarded counts requests forwarded to the peer that it answered.
	Forwarded uint64
	// ForwardFailures counts requests forwarded to the peer that got no
	// answer: an error from Forward other than a bad request (unknown
	// peer, refused, unreachable, cancelled, malformed answer).
	ForwardFailures uint64
	// ForwardsReceived counts requests from the peer that the local
	// ForwardHandler answered.
	ForwardsReceived uint64
	// RefusedForwards counts requests from the peer refused before the
	// ForwardHandler: malformed, too large, no handler, not a current
	// peer (a refusal frame, or a goodbye for a frame too large to read).
	RefusedForwards uint64
	// UnknownSender counts connections and frames refused because the
	// peer is not in the current peer set (ErrUnknownSender): a
	// connection refused at its start (nothing was read from it), or a
	// batch or forwarded request that arrived after SetPeers removed the
	// peer, which is also in RefusedBatches or RefusedForwards.
	UnknownSender uint64
}

// counters are one peer's live counters.
type counters struct {
	sent, dropped, received, refused, handshake atomic.Uint64

	forwarded, forwardFailed, forwardsReceived, refusedForwards, unknownSender atomic.Uint64

	// frames and flushes count the frames the connections with the peer
	// (both directions) wrote and the flushes that sent them: their ratio
	// is the write coalescing. Only tests read them.
	frames, flushes atomic.Uint64
}

// statsTable holds the counters of every peer ever seen. Its entries are
// never removed: counters only grow, and the ids come from the local raft
// node (To) or from endorsed certificates (From), so they are few.
type statsTable struct {
	mu      sync.Mutex
	peers   map[uint64]*counters
	inbound atomic.Uint64
}

func (s *statsTable) get(id uint64) *counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.peers[id]
	if !ok {
		if s.peers == nil {
			s.peers = make(map[uint64]*counters)
		}
		c = new(counters)
		s.peers[id] = c
	}
	return c
}

func (s *statsTable) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Peers: make(map[uint64]PeerStats, len(s.peers)), InboundHandshakeFailures: s.inbound.Load()}
	for id, c := range s.peers {
		out.Peers[id] = PeerStats{
			Sent:              c.sent.Load(),
			Dropped:           c.dropped.Load(),
			Received:          c.received.Load(),
			RefusedBatches:    c.refused.Load(),
			HandshakeFailures: c.handshake.Load(),
			Forwarded:         c.forwarded.Load(),
			ForwardFailures:   c.forwardFailed.Load(),
			ForwardsReceived:  c.forwardsReceived.Load(),
			RefusedForwards:   c.refusedForwards.Load(),
			UnknownSender:     c.unknownSender.Load(),
		}
	}
	return out
}
