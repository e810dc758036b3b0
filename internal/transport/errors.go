package transport

import (
	"errors"
	"fmt"

	"github.com/cocoledger/coco/internal/ids"
)

var (
	// ErrBadConfig reports a TLSConfig that cannot work: a missing field,
	// a node certificate that the service did not endorse, or a LocalID
	// that is not the raft id of the certificate's key.
	ErrBadConfig = errors.New("transport: bad configuration")
	// ErrMalformedBatch reports a request body that is not a well-formed
	// batch (see doc.go): truncated, trailing bytes, a count of zero, a
	// message that does not decode.
	ErrMalformedBatch = errors.New("transport: malformed batch")
	// ErrUnsupportedVersion reports a batch, forwarded request or
	// forwarded response whose version this node does not speak.
	ErrUnsupportedVersion = errors.New("transport: unsupported wire version")
	// ErrBatchTooLarge reports a batch over MaxBatchMessages messages or
	// MaxBatchBytes bytes, and a single message that could never fit in one.
	ErrBatchTooLarge = errors.New("transport: batch too large")
	// ErrNotEndorsed reports a peer certificate that does not chain to the
	// service certificate (self-signed, endorsed by another service,
	// expired, wrong key usage). Every such *HandshakeError matches it.
	ErrNotEndorsed = errors.New("transport: certificate not endorsed by the service")
	// ErrWrongPeer reports a peer whose endorsed certificate is the
	// identity of another raft node than the one dialled (a stale address
	// after a membership change, a misconfiguration).
	ErrWrongPeer = errors.New("transport: peer certificate names another node")
	// ErrSpoofedSender reports a batch holding a message whose From is not
	// the raft id of the sending node's certificate: a node cannot speak
	// for another.
	ErrSpoofedSender = errors.New("transport: message From is not the sender")
	// ErrMisdirected reports a batch holding a message whose To is not this
	// node's raft id.
	ErrMisdirected = errors.New("transport: message To is not this node")
	// ErrRefused reports a batch or forwarded request the peer answered
	// with an error status; every *RefusedError matches it.
	ErrRefused = errors.New("transport: request refused by peer")
	// ErrUnknownSender reports a batch or forwarded request from a node
	// whose (endorsed) certificate is not one of the current peers given to
	// SetPeers: a removed node, or one not added yet. Endorsement alone
	// does not make a node a member: the service cannot revoke a node
	// certificate, so membership is what refuses a removed node.
	ErrUnknownSender = errors.New("transport: sender is not a current peer")
	// ErrUnknownPeer reports a Forward to a raft id that is not a current
	// peer (never added, removed, or the local node itself).
	ErrUnknownPeer = errors.New("transport: unknown peer")
	// ErrUnreachable reports a Forward that did not get an answer from the
	// peer: a network or HTTP failure (TLS), a partition or a stopped peer
	// (MemNetwork). The request may or may not have been executed.
	ErrUnreachable = errors.New("transport: peer unreachable")
	// ErrClosed reports a Forward on a closed transport.
	ErrClosed = errors.New("transport: closed")
	// ErrBadForward reports a forwarded request or response that is not
	// well formed (see doc.go): it does not decode strictly, is not in
	// canonical form, or breaks a field rule (method, path, header names
	// and values, status).
	ErrBadForward = errors.New("transport: malformed forwarded request or response")
	// ErrForwardTooLarge reports a forwarded request or response over
	// MaxForwardBodyBytes of body, MaxForwardMetaBytes of everything else,
	// MaxForwardHeaderFields header values, or MaxForwardWireBytes encoded.
	ErrForwardTooLarge = errors.New("transport: forwarded request or response too large")
)

// HandshakeError is a TLS connection refused because of the peer's
// identity: its certificate does not chain to the service certificate
// (it matches ErrNotEndorsed and the x509 error) or it names another raft
// id than the peer dialled (it matches ErrWrongPeer).
type HandshakeError struct {
	// Peer is the raft id the connection was meant for (outbound), 0 for
	// an inbound connection.
	Peer uint64
	// Address is the peer's node_address (outbound) or remote address
	// (inbound).
	Address string
	// NodeID is the id of the key in the certificate presented, endorsed
	// or not ("" if none was presented).
	NodeID ids.NodeID
	// Err says why: ErrNotEndorsed wrapping the x509 error, or ErrWrongPeer.
	Err error
}

func (e *HandshakeError) Error() string {
	who := e.Address
	if e.Peer != 0 {
		who = fmt.Sprintf("peer %x at %s", e.Peer, e.Address)
	}
	s := "transport: TLS handshake with " + who + " refused"
	if e.NodeID != "" {
		s += " (certificate of node " + string(e.NodeID) + ")"
	}
	return s + ": " + e.Err.Error()
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// RefusedError is a batch or forwarded request that the peer answered
// with an error status: the transport's refusal, not the application's
// answer (a forwarded request the application refused is a
// ForwardedResponse with its status, not an error).
type RefusedError struct {
	Peer    uint64
	Path    string // the endpoint: RaftPath or ForwardPath
	Status  int    // HTTP status
	Message string // the peer's explanation (first bytes of the body)
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("transport: peer %x refused POST %s: %d %s", e.Peer, e.Path, e.Status, e.Message)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }
