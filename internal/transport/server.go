package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/ids"
)

// errNotHTTP2 is the refusal of an inbound connection that did not
// negotiate HTTP/2 (ALPN "h2").
var errNotHTTP2 = errors.New("transport: peer did not negotiate HTTP/2")

func (t *TLS) startServer() {
	tlsCfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cfg.Cert},
		// Only certificates endorsed by the service are accepted: a node
		// proves it is one of the service's nodes, and its raft id is
		// the hash of its key (RaftIDOf), checked against every message.
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  t.roots,
		NextProtos: []string{"h2"},
	}
	t.ln = &handshakeListener{
		t:     t,
		inner: t.cfg.Listener,
		cfg:   tlsCfg,
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
		slots: make(chan struct{}, maxHandshakes),

		acceptDone: make(chan struct{}),
	}
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	t.srv = &http.Server{
		Handler: t,
		// Lists "h2", which makes Serve set up HTTP/2 (and modifies it:
		// a clone, the handshakes use tlsCfg).
		TLSConfig:         tlsCfg.Clone(),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		HTTP2: &http.HTTP2Config{
			// Per connection, i.e. per peer: one stream for the
			// sender's batch in flight, and one per request that peer
			// forwards, which waits while the primary executes it (a
			// write, possibly waiting for a commit). A backup relays
			// its clients' writes concurrently, so this is sized for
			// many; past it the client opens a second connection
			// rather than queueing. Memory does not grow with it: the
			// receive buffers below and the forward byte budget bound
			// what streams hold, and a goroutine per stream is cheap.
			MaxConcurrentStreams:          256,
			MaxReceiveBufferPerConnection: 2 << 20,
			MaxReceiveBufferPerStream:     2 << 20,
			SendPingTimeout:               30 * time.Second,
			PingTimeout:                   10 * time.Second,
		},
		BaseContext: func(net.Listener) context.Context { return t.ctx },
		ConnContext: connContext,
		ErrorLog:    slog.NewLogLogger(t.log.Handler(), slog.LevelDebug),
	}
	go t.ln.acceptLoop()
	go func() {
		defer close(t.serveDone)
		if err := t.srv.Serve(t.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.log.Error("transport: server stopped", "err", err)
		}
	}()
}

// handshakeListener accepts on the node_address and completes the TLS
// handshake itself, in a goroutine per connection, before handing the
// connection to the HTTP server: so every refusal is counted and logged
// with its x509 error (net/http would only print it).
type handshakeListener struct {
	t     *TLS
	inner net.Listener
	cfg   *tls.Config
	conns chan net.Conn // handshaken connections, to Accept
	done  chan struct{} // closed by Close
	slots chan struct{} // semaphore of handshakes in progress

	closeOnce  sync.Once
	acceptDone chan struct{}
	wg         sync.WaitGroup // handshake goroutines; Add only in acceptLoop
}

func (l *handshakeListener) acceptLoop() {
	defer close(l.acceptDone)
	delay := time.Duration(0)
	for {
		raw, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				l.t.log.Error("transport: listener closed under the transport", "err", err)
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.t.log.Warn("transport: accept failed; retrying", "err", err, "delay", delay)
			timer := time.NewTimer(delay)
			select {
			case <-l.done:
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		delay = 0
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			raw.Close()
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.slots }()
			l.handshake(raw)
		}()
	}
}

func (l *handshakeListener) handshake(raw net.Conn) {
	tc := tls.Server(raw, l.cfg)
	ctx, cancel := context.WithTimeout(l.t.ctx, handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err == nil && tc.ConnectionState().NegotiatedProtocol != "h2" {
		err = errNotHTTP2
	}
	if err != nil {
		tc.Close()
		l.t.inboundRefused(raw.RemoteAddr(), err)
		return
	}
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.Close()
	}
}

// inboundRefused counts and logs an inbound connection refused at the
// handshake. A certificate the service did not endorse is a warning with
// the x509 error and the presented key's node id; anything else (no
// certificate, not TLS, a dropped connection) is debug noise.
func (t *TLS) inboundRefused(remote net.Addr, err error) {
	if t.ctx.Err() != nil {
		return // a handshake cut short by Close is not a refusal
	}
	t.stats.inbound.Add(1)
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		herr := &HandshakeError{Address: remote.String(), Err: fmt.Errorf("%w: %w", ErrNotEndorsed, cve.Err)}
		if len(cve.UnverifiedCertificates) > 0 {
			if id, e := crypto.PublicKeyID(cve.UnverifiedCertificates[0].PublicKey); e == nil {
				herr.NodeID = ids.NodeID(id)
			}
		}
		t.log.Warn("transport: refused an inbound connection: client certificate not endorsed by the service",
			"remote", remote.String(), "node_id", string(herr.NodeID), "err", herr)
		return
	}
	t.log.Debug("transport: inbound TLS handshake failed", "remote", remote.String(), "err", err)
}

// Accept returns the next handshaken connection.
func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the node_address listener.
func (l *handshakeListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// wait returns when the accept loop and every handshake have finished.
func (l *handshakeListener) wait() {
	<-l.acceptDone
	l.wg.Wait()
}

func (l *handshakeListener) Addr() net.Addr { return l.inner.Addr() }

// senderKey marks the sending node's raft id in a connection's context.
type senderKey struct{}

// connContext records the raft id of the connection's (verified) client
// certificate, once per connection: TLS 1.3 has no renegotiation.
func connContext(ctx context.Context, c net.Conn) context.Context {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return ctx
	}
	cs := tc.ConnectionState()
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return ctx
	}
	id, err := RaftIDOf(cs.PeerCertificates[0].PublicKey)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, senderKey{}, id)
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP receives one batch (POST RaftPath) or one forwarded request
// (POST ForwardPath) from a node whose certificate the handshake
// verified. A node that is not a current peer is refused (403,
// ErrUnknownSender) before its body is read.
func (t *TLS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.handlerMu.RLock()
	if t.handlerClosed {
		t.handlerMu.RUnlock()
		http.Error(w, "transport: closing", http.StatusServiceUnavailable)
		return
	}
	t.handlerWG.Add(1)
	t.handlerMu.RUnlock()
	defer t.handlerWG.Done()

	if r.URL.Path != RaftPath && r.URL.Path != ForwardPath {
		http.Error(w, "transport: no endpoint "+r.URL.Path, http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "transport: "+r.URL.Path+" accepts POST only", http.StatusMethodNotAllowed)
		return
	}
	from, ok := r.Context().Value(senderKey{}).(uint64)
	if !ok {
		http.Error(w, "transport: no verified client certificate", http.StatusUnauthorized)
		return
	}
	c := t.stats.get(from)
	if !t.isPeer(from) {
		t.refuseUnknownSender(w, r, from, c)
		return
	}
	if r.URL.Path == ForwardPath {
		t.serveForward(w, r, from, c)
		return
	}
	t.serveBatch(w, r, from, c)
}

// refuseUnknownSender refuses a request from an endorsed node that is not
// a current peer: a removed node (its certificate stays endorsed: the
// service cannot revoke it) or one not added yet. A removed node keeps
// retrying, about once a second, so the refusals of a node are logged at
// warning level when their count is a power of two (1, 2, 4, ...) and at
// debug level otherwise; all are counted.
func (t *TLS) refuseUnknownSender(w http.ResponseWriter, r *http.Request, from uint64, c *counters) {
	if r.URL.Path == ForwardPath {
		c.refusedForwards.Add(1)
	} else {
		c.refused.Add(1)
	}
	n := c.unknownSender.Add(1)
	err := fmt.Errorf("%w: node %x is not a peer of node %x", ErrUnknownSender, from, t.cfg.LocalID)
	level := slog.LevelDebug
	if n&(n-1) == 0 {
		level = slog.LevelWarn
	}
	t.log.Log(r.Context(), level, "transport: refused a request from a node that is not a current peer",
		"peer", hexID(from), "remote", r.RemoteAddr, "path", r.URL.Path, "refusals", n, "err", err)
	http.Error(w, err.Error(), http.StatusForbidden)
}

// serveBatch receives one batch. The batch is refused whole if it is
// malformed or if any message is not From the sender or not To this node;
// otherwise the Handler gets it and the answer is 204.
func (t *TLS) serveBatch(w http.ResponseWriter, r *http.Request, from uint64, c *counters) {
	refuse := func(status int, err error) {
		c.refused.Add(1)
		t.log.Warn("transport: refused a batch", "peer", hexID(from), "remote", r.RemoteAddr, "status", status, "err", err)
		http.Error(w, err.Error(), status)
	}
	if ct := r.Header.Get("Content-Type"); ct != ContentType {
		refuse(http.StatusUnsupportedMediaType, fmt.Errorf("%w: content type %q, want %q", ErrMalformedBatch, ct, ContentType))
		return
	}
	if r.ContentLength > MaxBatchBytes {
		refuse(http.StatusRequestEntityTooLarge, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBatchTooLarge, r.ContentLength, MaxBatchBytes))
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	defer putBody(buf)
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBatchBytes)); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			refuse(http.StatusRequestEntityTooLarge, fmt.Errorf("%w: over %d bytes", ErrBatchTooLarge, MaxBatchBytes))
			return
		}
		t.log.Debug("transport: reading a batch failed", "peer", hexID(from), "err", err)
		http.Error(w, "transport: reading the batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	msgs, err := DecodeBatch(buf.Bytes())
	if err != nil {
		refuse(http.StatusBadRequest, err)
		return
	}
	for i := range msgs {
		if msgs[i].From != from {
			refuse(http.StatusForbidden, fmt.Errorf("%w: message %d (%s) is from %x, the sender's certificate is node %x",
				ErrSpoofedSender, i, msgs[i].Type, msgs[i].From, from))
			return
		}
		if msgs[i].To != t.cfg.LocalID {
			refuse(http.StatusMisdirectedRequest, fmt.Errorf("%w: message %d (%s) is to %x, this is node %x",
				ErrMisdirected, i, msgs[i].Type, msgs[i].To, t.cfg.LocalID))
			return
		}
	}
	t.cfg.Handler(r.Context(), msgs)
	c.received.Add(uint64(len(msgs)))
	w.WriteHeader(http.StatusNoContent)
}

// putBody returns a body buffer to the pool unless it grew past what is
// worth keeping.
func putBody(b *bytes.Buffer) {
	if b.Cap() <= 4<<20 {
		bodyPool.Put(b)
	}
}

// drainAndClose reads what is left of a response body (so the stream
// ends cleanly) up to a bound, and closes it.
func drainAndClose(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 4<<10))
	rc.Close()
}
