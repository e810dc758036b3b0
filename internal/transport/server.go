package transport

import (
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

// errNoALPN is the refusal of an inbound connection that did not
// negotiate the stream protocol.
var errNoALPN = errors.New("transport: peer did not negotiate ALPN " + alpnProtocol)

// acceptLoop accepts on the node_address and serves each connection in a
// goroutine of its own, which completes the TLS handshake itself (so
// every refusal is counted and logged with its x509 error) and then reads
// the connection. At most maxHandshakes handshakes are in progress: the
// loop waits for a slot.
func (t *TLS) acceptLoop() {
	defer close(t.acceptDone)
	delay := time.Duration(0)
	for {
		raw, err := t.cfg.Listener.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				t.log.Error("transport: listener closed under the transport", "err", err)
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("transport: accept failed; retrying", "err", err, "delay", delay)
			timer := time.NewTimer(delay)
			select {
			case <-t.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		delay = 0
		select {
		case t.slots <- struct{}{}:
		case <-t.ctx.Done():
			raw.Close()
			return
		}
		t.connWG.Add(1)
		go func() {
			defer t.connWG.Done()
			t.serveConn(raw)
		}()
	}
}

// serveConn completes the handshake of an inbound connection, releases
// its handshake slot and serves it until it ends.
func (t *TLS) serveConn(raw net.Conn) {
	if err := tuneConn(raw); err != nil {
		t.log.Debug("transport: could not set keepalive on an inbound connection", "remote", raw.RemoteAddr().String(), "err", err)
	}
	tc, from, err := t.handshake(raw)
	<-t.slots
	if err != nil {
		tc.Close()
		t.inboundRefused(raw.RemoteAddr(), err)
		return
	}
	newInConn(t, tc, from).serve()
}

// handshake runs the server side of the TLS handshake and returns the
// raft id of the client's verified certificate.
func (t *TLS) handshake(raw net.Conn) (*tls.Conn, uint64, error) {
	tc := tls.Server(raw, t.serverTLS)
	ctx, cancel := context.WithTimeout(t.ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return tc, 0, err
	}
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol != alpnProtocol {
		return tc, 0, errNoALPN
	}
	// RequireAndVerifyClientCert: the chain is verified, so there is a leaf.
	id, err := RaftIDOf(cs.PeerCertificates[0].PublicKey)
	return tc, id, err
}

// inboundRefused counts and logs an inbound connection refused at the
// handshake. A certificate the service did not endorse is a warning with
// the x509 error and the presented key's node id; anything else (no
// certificate, not TLS, no ALPN, a dropped connection) is debug noise.
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

// refusal is why a receiver refuses a connection (a goodbye frame) or a
// forwarded request (a refusal frame): the status it sends, and the
// error its text explains.
type refusal struct {
	status int
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refusalStatus is the status that refuses a frame for err.
func refusalStatus(err error) int {
	switch {
	case errors.Is(err, ErrBatchTooLarge), errors.Is(err, ErrForwardTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrSpoofedSender), errors.Is(err, ErrUnknownSender):
		return http.StatusForbidden
	case errors.Is(err, ErrMisdirected):
		return http.StatusMisdirectedRequest
	}
	return http.StatusBadRequest
}

// inConn is an inbound connection from a peer (its sender). Its
// goroutines: the reader (serve, in the accept loop's goroutine for the
// connection), which delivers batches to the Handler itself, in order;
// one writer (write), which sends hello, answers, refusals and the
// goodbye; and one per ForwardHandler call in progress (execute). The
// reader starts the others and, in teardown, waits for them.
type inConn struct {
	t      *TLS
	tc     *tls.Conn
	fr     *frameReader
	from   uint64
	remote string
	c      *counters
	// ctx is the Handler's and the parent of the ForwardHandler calls':
	// cancelled when the connection ends, the peer is removed or the
	// transport closes.
	ctx    context.Context
	cancel context.CancelFunc

	handlers   sync.WaitGroup // execute goroutines; Add only in the reader
	quiesced   chan struct{}  // closed once no Handler call is or will be in progress, nor a ForwardHandler call started
	writerDone chan struct{}
	saidBye    bool // the writer sent the goodbye; read after writerDone

	mu        sync.Mutex
	out       []outFrame // for the writer, in order
	outClosed bool       // the writer takes no more frames
	wake      chan struct{}
	inflight  map[uint64]context.CancelCauseFunc // ForwardHandler calls by frame id
	cutBy     *refusal                           // set by SetPeers (cut)
}

func newInConn(t *TLS, tc *tls.Conn, from uint64) *inConn {
	c := &inConn{
		t: t, tc: tc, fr: newFrameReader(tc), from: from, remote: tc.RemoteAddr().String(), c: t.stats.get(from),
		quiesced: make(chan struct{}), writerDone: make(chan struct{}), wake: make(chan struct{}, 1),
		inflight: make(map[uint64]context.CancelCauseFunc),
	}
	c.ctx, c.cancel = context.WithCancel(t.ctx)
	return c
}

// serve admits the connection (its sender must be a current peer) and
// reads it until it ends or is refused.
func (c *inConn) serve() {
	// Close closes the connection at once, whatever it is doing; the
	// other ends (refusal, SetPeers) first say goodbye.
	stop := context.AfterFunc(c.t.ctx, func() { c.tc.Close() })
	defer stop()
	go c.write()
	var reason error
	switch admitted, closed := c.register(); {
	case admitted:
		c.push(outFrame{kind: frameHello})
		reason = c.readLoop()
	case !closed:
		reason = c.refuseUnknownSender(0)
	}
	c.teardown(reason)
}

// register adds the connection to the transport's inbound connections if
// its sender is a current peer and the transport is open. Under t.mu, so
// that SetPeers either sees the connection (and cuts it) or the
// connection sees the peer removed.
func (c *inConn) register() (admitted, closed bool) {
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false, true
	}
	if _, ok := t.senders[c.from]; !ok {
		return false, false
	}
	conns := t.inbound[c.from]
	if conns == nil {
		conns = make(map[*inConn]struct{})
		t.inbound[c.from] = conns
	}
	conns[c] = struct{}{}
	return true, false
}

// readLoop reads frames until the connection fails or a frame is
// refused; it returns why (a *refusal to say goodbye with).
func (c *inConn) readLoop() error {
	for {
		kind, n, err := c.fr.next(&toReceiver)
		if c.ctx.Err() != nil {
			return err // cut or closing: teardown knows why
		}
		if err != nil {
			if errors.Is(err, ErrMalformedFrame) || errors.Is(err, ErrBatchTooLarge) || errors.Is(err, ErrForwardTooLarge) {
				return c.refuse(kind, err)
			}
			return err
		}
		// SetPeers also cuts the connection of a removed peer, but a
		// frame may have been read meanwhile.
		if !c.t.isPeer(c.from) {
			return c.refuseUnknownSender(kind)
		}
		switch kind {
		case frameBatch:
			err = c.readBatch(n)
		case frameForward:
			err = c.readForward(n)
		case frameCancel:
			err = c.readCancel()
		}
		if err != nil {
			return err
		}
	}
}

// readBatch reads a batch and hands it to the Handler. The batch is
// refused whole if it is malformed or if any message is not From the
// sender or not To this node.
func (c *inConn) readBatch(n uint32) error {
	buf := getBody()
	defer putBody(buf)
	if err := c.fr.readPayload(buf, int64(n)); err != nil {
		return err
	}
	msgs, err := DecodeBatch(buf.Bytes())
	if err != nil {
		return c.refuse(frameBatch, err)
	}
	for i := range msgs {
		if msgs[i].From != c.from {
			return c.refuse(frameBatch, fmt.Errorf("%w: message %d (%s) is from %x, the sender's certificate is node %x",
				ErrSpoofedSender, i, msgs[i].Type, msgs[i].From, c.from))
		}
		if msgs[i].To != c.t.cfg.LocalID {
			return c.refuse(frameBatch, fmt.Errorf("%w: message %d (%s) is to %x, this is node %x",
				ErrMisdirected, i, msgs[i].Type, msgs[i].To, c.t.cfg.LocalID))
		}
	}
	if c.ctx.Err() != nil {
		return c.ctx.Err() // cut meanwhile: teardown knows why
	}
	c.c.received.Add(uint64(len(msgs)))
	c.t.cfg.Handler(c.ctx, msgs)
	return nil
}

// refuse counts and logs the refusal of a frame of kind and returns the
// goodbye that closes the connection.
func (c *inConn) refuse(kind frameKind, err error) *refusal {
	msg := "transport: refused a frame"
	switch c.countRefused(kind) {
	case frameBatch:
		msg = "transport: refused a batch"
	case frameForward:
		msg = "transport: refused a forwarded request"
	}
	r := &refusal{status: refusalStatus(err), err: err}
	c.t.log.Warn(msg, "peer", hexID(c.from), "remote", c.remote, "status", r.status, "err", err)
	return r
}

// countRefused counts a refused batch or forward frame (other kinds have
// no counter) and returns kind.
func (c *inConn) countRefused(kind frameKind) frameKind {
	switch kind {
	case frameBatch:
		c.c.refused.Add(1)
	case frameForward:
		c.c.refusedForwards.Add(1)
	}
	return kind
}

// refuseUnknownSender refuses the connection of an endorsed node that is
// not a current peer, at its start (kind 0) or on a frame of kind: a
// removed node (its certificate stays endorsed: the service cannot revoke
// it) or one not added yet. A removed node keeps redialling, about once a
// second, so the refusals of a node are logged at warning level when
// their count is a power of two (1, 2, 4, ...) and at debug level
// otherwise; all are counted.
func (c *inConn) refuseUnknownSender(kind frameKind) *refusal {
	c.countRefused(kind)
	n := c.c.unknownSender.Add(1)
	err := fmt.Errorf("%w: node %x is not a peer of node %x", ErrUnknownSender, c.from, c.t.cfg.LocalID)
	level := slog.LevelDebug
	if n&(n-1) == 0 {
		level = slog.LevelWarn
	}
	attrs := []any{"peer", hexID(c.from), "remote", c.remote, "refusals", n, "err", err}
	if kind != 0 {
		attrs = append(attrs, "frame", kind.String())
	}
	c.t.log.Log(c.ctx, level, "transport: refused a node that is not a current peer", attrs...)
	return &refusal{status: http.StatusForbidden, err: err}
}

// cut ends the connection of a peer that SetPeers removed: the reader
// stops delivering (its context, and so the ForwardHandler calls', is
// cancelled and its read interrupted) and says goodbye with r. SetPeers
// then waits for quiesced.
func (c *inConn) cut(r *refusal) {
	c.mu.Lock()
	if c.cutBy == nil {
		c.cutBy = r
	}
	c.mu.Unlock()
	c.cancel()
	_ = c.tc.SetReadDeadline(time.Now()) // a closed connection needs no waking
}

// teardown ends the connection: it stops the ForwardHandler calls and
// waits for them, has the writer send what is queued and, for a refusal,
// a goodbye, reads what the peer still sends until it closes (bounded by
// lingerTimeout), and closes.
func (c *inConn) teardown(reason error) {
	c.mu.Lock()
	if c.cutBy != nil {
		reason = c.cutBy
	}
	c.mu.Unlock()
	var bye *refusal
	if c.t.ctx.Err() == nil && !errors.As(reason, &bye) && !errors.Is(reason, io.EOF) {
		c.t.log.Debug("transport: inbound connection failed", "peer", hexID(c.from), "remote", c.remote, "err", reason)
	}
	c.cancel()
	// The reader calls the Handler and starts the ForwardHandler calls:
	// from here on it does neither. SetPeers waits for this point, not
	// for the ForwardHandler calls in progress (cancelled): one of them
	// may be what called SetPeers.
	close(c.quiesced)
	c.closeOut(bye)
	c.handlers.Wait()
	<-c.writerDone
	if c.saidBye && c.t.ctx.Err() == nil {
		_ = c.tc.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.Copy(io.Discard, c.fr.r)
	}
	c.tc.Close()
	c.t.mu.Lock()
	if conns := c.t.inbound[c.from]; conns != nil {
		delete(conns, c)
		if len(conns) == 0 {
			delete(c.t.inbound, c.from)
		}
	}
	c.t.mu.Unlock()
}

// push queues f for the writer. Once the writer takes no more frames, f
// is dropped and the budget it holds given back.
func (c *inConn) push(f outFrame) {
	c.mu.Lock()
	if c.outClosed {
		c.mu.Unlock()
		c.t.fwdBudget.release(f.release)
		return
	}
	c.out = append(c.out, f)
	c.mu.Unlock()
	c.poke()
}

// poke wakes the writer.
func (c *inConn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// closeOut queues the goodbye, if any, as the writer's last frame.
func (c *inConn) closeOut(bye *refusal) {
	c.mu.Lock()
	if !c.outClosed && bye != nil {
		c.out = append(c.out, outFrame{kind: frameGoodbye, status: bye.status, body: refusalText(bye.err)})
	}
	c.outClosed = true
	c.mu.Unlock()
	c.poke()
}

// write is the connection's writer: it takes every queued frame, writes
// them into its buffer and flushes once the queue is empty, until
// closeOut. After a write error it closes the connection (which stops
// the reader) and drops what is queued.
func (c *inConn) write() {
	defer close(c.writerDone)
	fw := newFrameWriter(c.tc, c.c)
	var frames []outFrame
	for {
		c.mu.Lock()
		frames, c.out = c.out, frames[:0]
		last := c.outClosed
		c.mu.Unlock()
		err := c.writeFrames(fw, frames)
		n := len(frames)
		clear(frames) // do not pin answers until the next round
		if err == nil && n == 0 {
			if fw.yield() {
				continue
			}
			err = fw.flush()
		}
		switch {
		case err != nil:
			c.tc.Close()
			c.mu.Lock()
			rest := c.out
			c.out, c.outClosed = nil, true
			c.mu.Unlock()
			for i := range rest {
				c.t.fwdBudget.release(rest[i].release)
			}
			return
		case n > 0:
		case last:
			return
		default:
			<-c.wake
		}
	}
}

// writeFrames buffers frames; after a goodbye, which closeOut queues
// last, it flushes and closes the writing side. Every frame's budget is
// given back, written or not.
func (c *inConn) writeFrames(fw *frameWriter, frames []outFrame) error {
	var err error
	for i := range frames {
		f := &frames[i]
		if err == nil {
			err = fw.write(f)
			if err == nil && f.kind == frameGoodbye {
				if err = fw.flush(); err == nil {
					c.saidBye = true
					err = c.tc.CloseWrite()
				}
			}
		}
		c.t.fwdBudget.release(f.release)
	}
	return err
}
