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
	// ErrMalformedBatch reports a batch frame's payload that is not a
	// well-formed batch (see doc.go): truncated, trailing bytes, a count of
	// zero, a message that does not decode.
	ErrMalformedBatch = errors.New("transport: malformed batch")
	// ErrMalformedFrame reports a frame that breaks the stream protocol
	// (see doc.go): an unknown kind or one that does not travel in that
	// direction, a length outside its kind's bounds, a truncated payload,
	// a bad refusal, a forward id reused while in flight.
	ErrMalformedFrame = errors.New("transport: malformed frame")
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
	// ErrRefused reports a connection or forwarded request the peer
	// refused; every *RefusedError matches it.
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
	// peer: a network or protocol failure (TLS), a partition or a stopped peer
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

// Values of RefusedError.Kind: what the peer refused.
const (
	// RefusedConnection is a goodbye frame: the peer refused the
	// connection, or a frame on it, and closed it. Forwards in flight on
	// it fail with the refusal; raft messages already written are lost
	// (raft retransmits).
	RefusedConnection = "connection"
	// RefusedForward is a refusal frame: the peer refused one forwarded
	// request; the connection stays up.
	RefusedForward = "forward"
)

// RefusedError is a refusal by the peer's transport, not the
// application's answer (a forwarded request the application refused is a
// ForwardedResponse with its status, not an error).
type RefusedError struct {
	Peer uint64
	// Kind is what was refused: RefusedConnection or RefusedForward.
	Kind string
	// Status is the refusal code, numbered as HTTP statuses: 400
	// malformed, 403 ErrUnknownSender or ErrSpoofedSender, 413 too large,
	// 421 ErrMisdirected, 500 an answer that cannot be relayed, 501 no
	// ForwardHandler, 503 too busy (retry).
	Status  int
	Message string // the peer's explanation
}

func (e *RefusedError) Error() string {
	what := "the connection"
	if e.Kind == RefusedForward {
		what = "a forwarded request"
	}
	return fmt.Sprintf("transport: peer %x refused %s: %d %s", e.Peer, what, e.Status, e.Message)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }
