package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cocoledger/coco/internal/ids"
	"go.etcd.io/raft/v3/raftpb"
)

// sender owns one peer's queue, its outbound connection and the forwards
// in flight to it. Its goroutine (run) dials when there is something to
// send and is then the connection's one writer: it takes every forward
// and cancel frame queued, then raft messages up to a batch frame, and
// flushes only once nothing more is queued. A reader goroutine per
// connection (read) takes the peer's answers and refusals. One writer
// per connection means a peer receives a sender's messages in order.
type sender struct {
	t      *TLS
	peer   Peer
	c      *counters
	queue  chan raftpb.Message
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	tlsCfg *tls.Config
	// forwards counts the Forward calls to this peer in progress; run
	// waits for them (they return once ctx is done), so SetPeers and
	// Close return after them. Add only under t.mu while the sender is
	// in t.senders.
	forwards sync.WaitGroup

	mu      sync.Mutex
	pending map[uint64]*pendingForward // by frame id
	ctrl    []outFrame                 // forward and cancel frames for the writer, in order
	nextID  uint64
	conn    *outConn      // the connection being written; nil between connections
	wake    chan struct{} // signalled when ctrl gets a frame

	// Owned by run.
	carry     raftpb.Message // taken from the queue, not yet written
	hasCarry  bool
	unflushed uint64 // raft messages written since the last flush
	batch     []raftpb.Message
	buf       []byte
	lastErr   string // last failure logged at warning level; "" when healthy
}

// outConn is a connection a sender dialled.
type outConn struct {
	tc   *tls.Conn
	fr   *frameReader
	dead chan struct{} // closed when the reader returned
	err  error         // why the reader returned; read after dead
}

func (t *TLS) newSender(p Peer) *sender {
	s := &sender{
		t:       t,
		peer:    p,
		c:       t.stats.get(p.ID),
		queue:   make(chan raftpb.Message, t.cfg.QueueLen),
		done:    make(chan struct{}),
		pending: make(map[uint64]*pendingForward),
		wake:    make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(t.ctx)
	s.tlsCfg = &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Always present the node certificate, even when the server asks
		// for another issuer: a node of another service is then refused
		// with the x509 error in the server's log, not as a client
		// without a certificate.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &t.cfg.Cert, nil },
		RootCAs:              t.roots,
		// A peer is identified by its key, not by a host name: the
		// standard host name check is replaced by verifyPeer, which
		// checks the chain to the service certificate (RootCAs) and that
		// the key is the raft id dialled.
		InsecureSkipVerify: true,
		VerifyConnection:   s.verifyPeer,
		NextProtos:         []string{alpnProtocol},
	}
	return s
}

// verifyPeer runs at every handshake with the peer: its certificate must
// chain to the service certificate, for server use, and its key must be
// the raft id this sender sends to. A refusal is counted and aborts the
// handshake.
func (s *sender) verifyPeer(cs tls.ConnectionState) error {
	herr := &HandshakeError{Peer: s.peer.ID, Address: s.peer.Address}
	if len(cs.PeerCertificates) == 0 {
		herr.Err = fmt.Errorf("%w: no certificate presented", ErrNotEndorsed)
		s.c.handshake.Add(1)
		return herr
	}
	leaf := cs.PeerCertificates[0]
	herr.NodeID = nodeIDOf(leaf)
	if err := verifyChain(leaf, cs.PeerCertificates[1:], s.t.roots, x509.ExtKeyUsageServerAuth); err != nil {
		herr.Err = fmt.Errorf("%w: %w", ErrNotEndorsed, err)
		s.c.handshake.Add(1)
		return herr
	}
	if id, err := RaftIDOf(leaf.PublicKey); err != nil || id != s.peer.ID {
		herr.Err = fmt.Errorf("%w: its key is raft id %x", ErrWrongPeer, id)
		s.c.handshake.Add(1)
		return herr
	}
	return nil
}

func nodeIDOf(c *x509.Certificate) ids.NodeID {
	der, err := x509.MarshalPKIXPublicKey(c.PublicKey)
	if err != nil {
		return ""
	}
	return ids.NodeID(ids.Fingerprint(der))
}

// poke wakes the writer (or the sender waiting for work or in backoff)
// for a frame queued in ctrl.
func (s *sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// hasForwards reports whether forward frames wait for a connection.
func (s *sender) hasForwards() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ctrl) > 0
}

func (s *sender) run() {
	defer s.t.sendWG.Done()
	defer close(s.done)
	defer s.forwards.Wait() // they return once s.ctx is done
	defer func() {          // whatever is left was never sent
		n := len(s.queue)
		if s.hasCarry {
			n++
		}
		s.c.dropped.Add(uint64(n))
	}()
	failures := 0
	for {
		if !s.hasCarry && !s.hasForwards() {
			select {
			case <-s.ctx.Done():
				return
			case m := <-s.queue:
				s.carry, s.hasCarry = m, true
			case <-s.wake:
				continue
			}
		}
		var dropped uint64
		oc, err := s.connect()
		if err == nil {
			if s.lastErr != "" {
				s.t.log.Info("transport: peer reachable again", "peer", hexID(s.peer.ID), "address", s.peer.Address)
				s.lastErr = ""
			}
			failures = 0
			err = s.serve(oc)
			dropped, s.unflushed = s.unflushed, 0
		} else {
			// What was queued for the peer is stale by the next attempt
			// (raft retransmits); the forwards fail now rather than wait
			// for a peer that is down, and after the drop, so that what
			// their callers send next waits for the next attempt.
			dropped = s.dropQueued()
			s.failForwards(nil, err)
		}
		s.c.dropped.Add(dropped)
		if s.ctx.Err() != nil {
			return
		}
		s.logFailure(err, dropped)
		failures++
		if !s.backoff(failures) {
			return
		}
	}
}

// dropQueued drops the message carried and those queued now, and returns
// how many.
func (s *sender) dropQueued() uint64 {
	var n uint64
	if s.hasCarry {
		s.carry, s.hasCarry = raftpb.Message{}, false
		n++
	}
	for range len(s.queue) {
		<-s.queue
		n++
	}
	return n
}

// backoff waits after a failure, longer after each (up to backoffMax),
// but not when a forward is queued: a forward never waits for raft's
// backoff. It reports false when the sender is to stop.
func (s *sender) backoff(failures int) bool {
	if s.hasForwards() { // queued before a lost connection: not written yet
		return true
	}
	timer := time.NewTimer(min(backoffMin<<min(failures-1, 10), backoffMax))
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-s.wake:
			if s.hasForwards() {
				return true
			}
		}
	}
}

// unreachable wraps a failure to talk to the peer.
func (s *sender) unreachable(err error) error {
	return fmt.Errorf("%w: peer %x at %s: %w", ErrUnreachable, s.peer.ID, s.peer.Address, err)
}

// connect dials the peer, completes the TLS handshake (verifyPeer) and
// waits for the peer's first frame: a hello accepts the connection, a
// goodbye refuses it (*RefusedError). Nothing is written before the
// hello, so a refused connection loses nothing counted as sent.
func (s *sender) connect() (*outConn, error) {
	dctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
	raw, err := (&net.Dialer{}).DialContext(dctx, "tcp", s.peer.Address)
	cancel()
	if err != nil {
		return nil, s.unreachable(err)
	}
	if err := tuneConn(raw); err != nil {
		raw.Close()
		return nil, s.unreachable(err)
	}
	hctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(hctx, func() { raw.Close() }) // unblocks the wait for the hello
	tc := tls.Client(raw, s.tlsCfg)
	fr, err := s.greet(hctx, tc)
	if !stop() && err == nil {
		err = s.unreachable(context.Cause(hctx))
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	return &outConn{tc: tc, fr: fr, dead: make(chan struct{})}, nil
}

// greet runs the client side of the handshake and reads the hello.
func (s *sender) greet(ctx context.Context, tc *tls.Conn) (*frameReader, error) {
	if err := tc.HandshakeContext(ctx); err != nil {
		var herr *HandshakeError
		if errors.As(err, &herr) {
			return nil, herr
		}
		return nil, s.unreachable(err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != alpnProtocol {
		return nil, s.unreachable(fmt.Errorf("%w: the peer negotiated ALPN %q, not %q", ErrMalformedFrame, p, alpnProtocol))
	}
	if d, ok := ctx.Deadline(); ok {
		_ = tc.SetReadDeadline(d)
	}
	fr := newFrameReader(tc)
	kind, n, err := fr.next(&toSender)
	switch {
	case err != nil:
		return nil, s.unreachable(fmt.Errorf("waiting for the peer's hello: %w", noEOF(err)))
	case kind == frameGoodbye:
		return nil, s.readGoodbye(fr, n)
	case kind != frameHello:
		return nil, s.unreachable(fmt.Errorf("%w: %v frame before the hello", ErrMalformedFrame, kind))
	}
	_ = tc.SetReadDeadline(time.Time{})
	return fr, nil
}

// readGoodbye reads a goodbye frame of n payload bytes: the peer refused
// the connection.
func (s *sender) readGoodbye(fr *frameReader, n uint32) error {
	buf := getBody()
	defer putBody(buf)
	if err := fr.readPayload(buf, int64(n)); err != nil {
		return s.unreachable(fmt.Errorf("reading the peer's goodbye: %w", err))
	}
	status, text, err := parseStatusText(buf.Bytes())
	if err != nil {
		return s.unreachable(err)
	}
	return &RefusedError{Peer: s.peer.ID, Kind: RefusedConnection, Status: status, Message: text}
}

// serve writes to oc until it fails or the sender stops, then fails the
// forwards written to it and returns why it ended. Raft messages written
// but not flushed are left in s.unflushed for run to count as dropped.
func (s *sender) serve(oc *outConn) error {
	stop := context.AfterFunc(s.ctx, func() { oc.tc.Close() })
	defer stop()
	s.mu.Lock()
	s.conn = oc
	s.mu.Unlock()
	go s.read(oc)
	err := s.writeLoop(oc, newFrameWriter(oc.tc, s.c))
	oc.tc.Close() // stops the reader if the writer failed first
	<-oc.dead
	// The peer's goodbye explains the connection's end better than the
	// write error it caused.
	var rerr *RefusedError
	if err == nil || errors.As(oc.err, &rerr) {
		err = oc.err
	}
	s.failForwards(oc, err)
	return err
}

// writeLoop is the connection's writer: forward and cancel frames first,
// then a raft batch frame, again while anything is queued; then a flush,
// which is when the messages written count as sent, and a wait for more.
func (s *sender) writeLoop(oc *outConn, fw *frameWriter) error {
	var frames []outFrame
	for {
		frames = s.takeCtrl(oc, frames[:0])
		for i := range frames {
			if err := fw.write(&frames[i]); err != nil {
				return err
			}
		}
		wrote := len(frames) > 0
		clear(frames) // do not pin request bodies until the next round
		if !s.hasCarry {
			select {
			case m := <-s.queue:
				s.carry, s.hasCarry = m, true
			default:
			}
		}
		if s.hasCarry {
			if err := s.writeBatch(fw); err != nil {
				return err
			}
			continue
		}
		if wrote || fw.yield() {
			continue
		}
		if err := fw.flush(); err != nil {
			return err
		}
		s.c.sent.Add(s.unflushed)
		s.unflushed = 0
		select {
		case <-s.ctx.Done():
			return nil
		case <-oc.dead:
			return oc.err
		case m := <-s.queue:
			s.carry, s.hasCarry = m, true
		case <-s.wake:
		}
	}
}

// takeCtrl appends the frames queued for the writer to dst, skipping
// forwards abandoned before they were written, and marks the others as
// written to oc.
func (s *sender) takeCtrl(oc *outConn, dst []outFrame) []outFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.ctrl {
		if f.kind == frameForward {
			p, ok := s.pending[f.id]
			if !ok {
				continue
			}
			p.conn = oc
		}
		dst = append(dst, f)
	}
	clear(s.ctrl)
	s.ctrl = s.ctrl[:0]
	return dst
}

// writeBatch writes the carried message and what else is queued, up to
// MaxBatchMessages and maxBatchFrameBytes, as one batch frame. A message
// larger than maxBatchFrameBytes goes alone; one that no batch can hold
// is dropped.
func (s *sender) writeBatch(fw *frameWriter) error {
	batch := append(s.batch[:0], s.carry)
	s.carry, s.hasCarry = raftpb.Message{}, false
	defer func() {
		clear(batch) // do not pin entries until the next batch
		s.batch = batch[:0]
	}()
	size := batchHeaderLen + messageCost(&batch[0])
	if size > MaxBatchBytes {
		s.c.dropped.Add(1)
		s.t.log.Error("transport: dropping a message larger than a batch may be",
			"peer", hexID(s.peer.ID), "type", batch[0].Type.String(), "bytes", size, "limit", MaxBatchBytes)
		return nil
	}
fill:
	for len(batch) < MaxBatchMessages {
		select {
		case m := <-s.queue:
			n := messageCost(&m)
			if size+n > maxBatchFrameBytes {
				s.carry, s.hasCarry = m, true
				break fill
			}
			size += n
			batch = append(batch, m)
		default:
			break fill
		}
	}
	buf, err := AppendBatch(append(s.buf[:0], make([]byte, frameHeaderLen)...), batch)
	if cap(buf) <= 4<<20 {
		s.buf = buf
	} else {
		s.buf = nil
	}
	n := uint64(len(batch))
	if err != nil { // a message that does not marshal: a bug, not the peer's
		s.c.dropped.Add(n)
		s.t.log.Error("transport: dropping a batch that does not encode", "peer", hexID(s.peer.ID), "messages", n, "err", err)
		return nil
	}
	buf[0] = byte(frameBatch)
	binary.BigEndian.PutUint32(buf[1:frameHeaderLen], uint32(len(buf)-frameHeaderLen))
	s.unflushed += n
	return fw.writeRaw(buf)
}

// read is the connection's reader: it hands answers and refusals to
// their Forwards until the connection fails or the peer says goodbye.
func (s *sender) read(oc *outConn) {
	defer close(oc.dead)
	oc.err = s.readLoop(oc)
	oc.tc.Close() // stops the writer, wherever it is
}

func (s *sender) readLoop(oc *outConn) error {
	for {
		kind, n, err := oc.fr.next(&toSender)
		if err != nil {
			return s.unreachable(err)
		}
		switch kind {
		case frameAnswer, frameRefusal:
			id, err := oc.fr.readID()
			if err != nil {
				return s.unreachable(err)
			}
			buf := getBody()
			if err := oc.fr.readPayload(buf, int64(n)-frameIDLen); err != nil {
				putBody(buf)
				return s.unreachable(err)
			}
			r := forwardResult{answer: buf}
			if kind == frameRefusal {
				status, text, err := parseStatusText(buf.Bytes())
				putBody(buf)
				if err != nil {
					return s.unreachable(err)
				}
				r = forwardResult{err: &RefusedError{Peer: s.peer.ID, Kind: RefusedForward, Status: status, Message: text}}
			}
			s.deliver(oc, id, r)
		case frameGoodbye:
			return s.readGoodbye(oc.fr, n)
		default: // a second hello
			return s.unreachable(fmt.Errorf("%w: unexpected %v frame", ErrMalformedFrame, kind))
		}
	}
}

// logFailure logs a failed connection: at warning level when the failure
// is new (the first, or a different error), at debug level while it
// repeats, so a peer that is down or misconfigured is reported once, not
// per heartbeat. Every failure is counted whatever the level.
func (s *sender) logFailure(err error, dropped uint64) {
	attrs := []any{"peer", hexID(s.peer.ID), "address", s.peer.Address, "dropped", dropped, "err", err}
	msg := "transport: the connection to a peer failed"
	if errors.Is(err, ErrNotEndorsed) || errors.Is(err, ErrWrongPeer) {
		msg = "transport: refused the peer's certificate"
	}
	if text := err.Error(); text != s.lastErr {
		s.lastErr = text
		s.t.log.Warn(msg, attrs...)
		return
	}
	s.t.log.Debug(msg, attrs...)
}
