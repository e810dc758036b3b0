package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Timeouts and bounds of the TLS transport.
const (
	dialTimeout = 5 * time.Second
	// handshakeTimeout bounds a TLS handshake and, for a connection this
	// node dials, the wait for the peer's hello or goodbye.
	handshakeTimeout = 10 * time.Second
	// maxHandshakes bounds the inbound TLS handshakes in progress; the
	// accept loop waits for a slot, so a flood of half-open connections
	// costs at most this many goroutines.
	maxHandshakes = 64
	// lingerTimeout bounds how long a connection that was sent a goodbye
	// is read (and discarded) before it is closed: closing with unread
	// bytes would reset it, and the reset could destroy the goodbye
	// before the peer read it. The peer closes on reading the goodbye.
	lingerTimeout = 2 * time.Second
)

// A sender waits backoffMin after a failure, twice as long after each
// next one, up to backoffMax. Variables so that a test can make a
// backoff outlast it.
var (
	backoffMin = 20 * time.Millisecond
	backoffMax = time.Second
)

// TLSConfig configures NewTLS.
type TLSConfig struct {
	// LocalID is this node's raft id: RaftIDOf(the key of Cert).
	LocalID uint64
	// Listener is bound to the node_address; the transport serves on it and
	// closes it on Close.
	Listener net.Listener
	// Cert is the node certificate endorsed by the service (with its
	// private key), presented to peers as server and as client.
	Cert tls.Certificate
	// ServiceCert is the service identity: every peer's certificate must
	// chain to it.
	ServiceCert *x509.Certificate
	// Handler receives the messages for the local raft node.
	Handler Handler
	// Forward executes requests forwarded by peers (forward frames).
	// nil: this node refuses them (501), e.g. a node that never leads.
	Forward ForwardHandler
	// Logger receives refusals and failures; nil discards.
	Logger *slog.Logger
	// QueueLen bounds each peer's queue in messages; 0 means
	// DefaultQueueLen.
	QueueLen int
}

// TLS is the node-to-node transport: mutual TLS 1.3 and a framed
// stream protocol, one sender goroutine, queue and outbound connection per
// peer. See doc.go.
type TLS struct {
	cfg       TLSConfig
	log       *slog.Logger
	roots     *x509.CertPool
	serverTLS *tls.Config
	stats     statsTable

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu      sync.RWMutex
	closed  bool
	senders map[uint64]*sender
	// inbound holds the served inbound connections by sending peer, so
	// SetPeers can close those of a removed peer. A connection is added
	// only while its sender is in senders (both under mu).
	inbound map[uint64]map[*inConn]struct{}
	sendWG  sync.WaitGroup // sender goroutines

	acceptDone chan struct{}
	slots      chan struct{}  // semaphore of inbound handshakes in progress
	connWG     sync.WaitGroup // inbound connection goroutines; Add only in acceptLoop

	// fwdBudget bounds the bytes of inbound forwarded requests held at
	// once, across peers and connections.
	fwdBudget *byteBudget

	closeOnce sync.Once
}

var _ Transport = (*TLS)(nil)

// NewTLS checks cfg and starts serving on cfg.Listener. It refuses a node
// certificate that does not chain to the service certificate for both
// server and client use, and a LocalID that is not its raft id. On error
// the listener is left open.
func NewTLS(cfg TLSConfig) (*TLS, error) {
	switch {
	case cfg.Listener == nil:
		return nil, fmt.Errorf("%w: no listener", ErrBadConfig)
	case cfg.Handler == nil:
		return nil, fmt.Errorf("%w: no handler", ErrBadConfig)
	case cfg.ServiceCert == nil:
		return nil, fmt.Errorf("%w: no service certificate", ErrBadConfig)
	case len(cfg.Cert.Certificate) == 0 || cfg.Cert.PrivateKey == nil:
		return nil, fmt.Errorf("%w: no node certificate and key", ErrBadConfig)
	case cfg.QueueLen < 0:
		return nil, fmt.Errorf("%w: negative queue length %d", ErrBadConfig, cfg.QueueLen)
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	leaf := cfg.Cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cfg.Cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: node certificate: %w", ErrBadConfig, err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(cfg.ServiceCert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := verifyChain(leaf, nil, roots, usage); err != nil {
			return nil, fmt.Errorf("%w: node certificate: %w", ErrBadConfig, err)
		}
	}
	id, err := RaftIDOf(leaf.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if cfg.LocalID != id {
		return nil, fmt.Errorf("%w: LocalID %x is not %x, the raft id of the node certificate's key", ErrBadConfig, cfg.LocalID, id)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TLS{
		cfg:   cfg,
		log:   log.With("local", hexID(cfg.LocalID)),
		roots: roots,
		serverTLS: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cfg.Cert},
			// Only certificates endorsed by the service are accepted: a
			// node proves it is one of the service's nodes, and its raft
			// id is the hash of its key (RaftIDOf), checked against every
			// message.
			ClientAuth: tls.RequireAndVerifyClientCert,
			ClientCAs:  roots,
			NextProtos: []string{alpnProtocol},
		},
		senders:    make(map[uint64]*sender),
		inbound:    make(map[uint64]map[*inConn]struct{}),
		acceptDone: make(chan struct{}),
		slots:      make(chan struct{}, maxHandshakes),
		fwdBudget:  newByteBudget(forwardBudgetBytes),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	go t.acceptLoop()
	return t, nil
}

// verifyChain checks that leaf (with intermediates) chains to roots for usage.
func verifyChain(leaf *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}
	if len(intermediates) > 0 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range intermediates {
			opts.Intermediates.AddCert(c)
		}
	}
	_, err := leaf.Verify(opts)
	return err
}

// Addr is the address the transport serves on.
func (t *TLS) Addr() net.Addr { return t.cfg.Listener.Addr() }

// Send queues each message for its peer without blocking.
func (t *TLS) Send(msgs []raftpb.Message) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for i := range msgs {
		s, ok := t.senders[msgs[i].To]
		if !ok || t.closed {
			t.stats.get(msgs[i].To).dropped.Add(1)
			continue
		}
		select {
		case s.queue <- msgs[i]:
		default:
			s.c.dropped.Add(1)
		}
	}
}

// SetPeers starts a sender for each new peer and stops those of removed
// peers (and of peers whose address changed) before it returns; a
// Forward in flight to a removed peer is cancelled. Peers with id 0 or no
// address are ignored, with a warning. From its return, frames from a
// node no longer listed are refused (ErrUnknownSender): its inbound
// connections are sent a goodbye, no Handler call for it is in progress
// and the context of its ForwardHandler calls in progress is cancelled
// (SetPeers does not wait for them: one may be what called it); a newly
// listed node is accepted.
func (t *TLS) SetPeers(peers []Peer) {
	want := make(map[uint64]Peer, len(peers))
	for _, p := range peers {
		switch {
		case p.ID == t.cfg.LocalID:
		case p.ID == 0 || p.Address == "":
			t.log.Warn("transport: ignoring a peer without raft id or address", "peer", hexID(p.ID), "address", p.Address)
		default:
			want[p.ID] = p
		}
	}
	var (
		stopped []*sender
		cut     []*inConn
	)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	for id, s := range t.senders {
		if p, ok := want[id]; !ok || p.Address != s.peer.Address {
			delete(t.senders, id)
			stopped = append(stopped, s)
		}
	}
	for id, conns := range t.inbound {
		if _, ok := want[id]; ok {
			continue
		}
		for c := range conns {
			// Under mu: a frame read after this sees the peer gone, or
			// the connection cut, before it is delivered.
			c.cut(&refusal{status: http.StatusForbidden, err: fmt.Errorf("%w: node %x was removed from the peers of node %x", ErrUnknownSender, id, t.cfg.LocalID)})
			cut = append(cut, c)
		}
		delete(t.inbound, id)
	}
	for id, p := range want {
		if _, ok := t.senders[id]; !ok {
			s := t.newSender(p)
			t.senders[id] = s
			t.sendWG.Add(1)
			go s.run()
		}
	}
	t.mu.Unlock()
	for _, s := range stopped {
		s.cancel()
	}
	for _, s := range stopped {
		<-s.done
	}
	for _, c := range cut {
		<-c.quiesced
	}
}

// isPeer reports whether id is a current peer: the senders are the peer
// set, so the inbound check and the outbound queues cannot disagree.
func (t *TLS) isPeer(id uint64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.senders[id]
	return ok
}

// Stats returns a copy of the counters.
func (t *TLS) Stats() Stats { return t.stats.snapshot() }

// Close stops the senders (their queued messages count as dropped) and
// the Forwards in flight (ErrClosed), the accept loop, the handshakes and
// the inbound connections, whose Handler and ForwardHandler calls in
// progress it waits for (their context is cancelled), and closes the
// listener. It returns when every goroutine the transport started has
// exited. Close is idempotent.
func (t *TLS) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		senders := t.senders
		t.senders = nil
		t.inbound = nil
		t.mu.Unlock()
		// Cancelling t.ctx closes every connection (outbound: through
		// their sender's context; inbound: see inConn.serve) and aborts
		// the handshakes.
		t.cancel()
		for _, s := range senders {
			s.cancel()
		}
		t.sendWG.Wait()
		err = t.cfg.Listener.Close()
		<-t.acceptDone
		t.connWG.Wait()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}
