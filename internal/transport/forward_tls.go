package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

const (
	// forwardTimeout caps a Forward whatever its context: a primary whose
	// handler hangs must not hold the backup's client forever, nor a
	// connection that went silent (a peer that restarted resets it at
	// once; one cut off by the network is seen by TCP only later).
	forwardTimeout = time.Minute
	// forwardBudgetBytes bounds the encoded forwarded requests a node holds
	// at once (read, decoded, being executed, answer not yet written),
	// whatever the number of connections and peers: four at the largest,
	// thousands of usual size. Decoding briefly holds a second and third
	// copy of one request.
	forwardBudgetBytes = 4 * MaxForwardWireBytes
)

var (
	// errNoForwardHandler is the refusal of a forwarded request by a node
	// configured without a ForwardHandler.
	errNoForwardHandler = errors.New("transport: this node does not execute forwarded requests")
	// errBusy is the refusal of a forwarded request that does not fit in
	// the node's forward budget; the caller may retry.
	errBusy = errors.New("transport: too busy to take a forwarded request; retry")
	// errForwardAbandoned is the cause of a ForwardHandler's context
	// cancelled by a cancel frame.
	errForwardAbandoned = errors.New("transport: the sending node gave up the forwarded request")
)

// pendingForward is a Forward waiting for its answer.
type pendingForward struct {
	// conn is the connection the request was written to (or is being
	// written to), nil while it is queued. Under sender.mu.
	conn *outConn
	done chan forwardResult // receives the one result; buffered
}

// forwardResult is the answer (a pooled buffer holding the encoded
// ForwardedResponse) or why there is none.
type forwardResult struct {
	answer *bytes.Buffer
	err    error
}

// Forward queues req for the peer's connection, the one its sender
// writes raft batches to, ahead of any queued raft message, and waits for
// the answer. Without a connection it has the sender dial at once, even
// during raft's backoff; when that fails the forward fails (ErrUnreachable,
// *HandshakeError or *RefusedError) rather than waiting for the peer. It
// gives up when ctx is done (and then tells the peer, which cancels its
// handler's context), after forwardTimeout, when the connection is lost
// after the request was written, when the peer is removed by SetPeers or
// when the transport closes.
func (t *TLS) Forward(ctx context.Context, to uint64, req *ForwardedRequest) (*ForwardedResponse, error) {
	body, err := EncodeForwardedRequest(req)
	if err != nil {
		return nil, err
	}
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return nil, ErrClosed
	}
	s, ok := t.senders[to]
	if ok {
		s.forwards.Add(1)
	}
	t.mu.RUnlock()
	if !ok {
		if to == t.cfg.LocalID {
			return nil, fmt.Errorf("%w: %x is this node", ErrUnknownPeer, to)
		}
		t.stats.get(to).forwardFailed.Add(1)
		return nil, fmt.Errorf("%w: %x is not a current peer", ErrUnknownPeer, to)
	}
	defer s.forwards.Done()
	resp, err := s.forward(ctx, body)
	if err != nil {
		s.c.forwardFailed.Add(1)
		t.log.Debug("transport: forwarding a request failed", "peer", hexID(to), "address", s.peer.Address, "err", err)
		return nil, err
	}
	s.c.forwarded.Add(1)
	return resp, nil
}

// forward sends one encoded request and decodes the answer.
func (s *sender) forward(ctx context.Context, body []byte) (*ForwardedResponse, error) {
	if ctx.Err() != nil {
		return nil, s.forwardError(ctx, nil)
	}
	timer := time.NewTimer(forwardTimeout)
	defer timer.Stop()
	id, p := s.queueForward(body)
	var r forwardResult
	select {
	case r = <-p.done:
	case <-ctx.Done():
		s.abandon(id)
		return nil, s.forwardError(ctx, nil)
	case <-timer.C:
		s.abandon(id)
		return nil, s.unreachable(fmt.Errorf("no answer within %v", forwardTimeout))
	case <-s.ctx.Done():
		return nil, s.forwardError(ctx, nil)
	}
	if r.err != nil {
		return nil, s.forwardError(ctx, r.err)
	}
	defer putBody(r.answer)
	out, err := DecodeForwardedResponse(r.answer.Bytes())
	if err != nil {
		return nil, fmt.Errorf("transport: the answer of peer %x: %w", s.peer.ID, err)
	}
	return out, nil
}

// forwardError says why a forward got no answer: the caller's context,
// the transport's closing or the peer's removal first (they caused
// whatever else happened), then err.
func (s *sender) forwardError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("transport: forwarding to peer %x: %w", s.peer.ID, context.Cause(ctx))
	case s.t.ctx.Err() != nil:
		return ErrClosed
	case s.ctx.Err() != nil:
		return fmt.Errorf("%w: %x was removed while forwarding", ErrUnknownPeer, s.peer.ID)
	}
	return err
}

// queueForward registers a forward under a new id and queues its frame
// for the writer, waking the sender.
func (s *sender) queueForward(body []byte) (uint64, *pendingForward) {
	p := &pendingForward{done: make(chan forwardResult, 1)}
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.pending[id] = p
	s.ctrl = append(s.ctrl, outFrame{kind: frameForward, id: id, body: body})
	s.mu.Unlock()
	s.poke()
	return id, p
}

// abandon forgets a forward whose caller gave up. If its request went to
// the current connection, a cancel frame tells the peer; if it is still
// queued, the writer skips it.
func (s *sender) abandon(id uint64) {
	s.mu.Lock()
	p, ok := s.pending[id]
	cancel := ok && p.conn != nil && p.conn == s.conn
	if ok {
		delete(s.pending, id)
	}
	if cancel {
		s.ctrl = append(s.ctrl, outFrame{kind: frameCancel, id: id})
	}
	s.mu.Unlock()
	if cancel {
		s.poke()
	}
}

// deliver hands the result for id, read from oc, to its Forward; a
// result for a forward abandoned meanwhile, or not written to oc, is
// dropped.
func (s *sender) deliver(oc *outConn, id uint64, r forwardResult) {
	s.mu.Lock()
	p, ok := s.pending[id]
	if ok && p.conn == oc {
		delete(s.pending, id)
	} else {
		p = nil
	}
	s.mu.Unlock()
	if p == nil {
		if r.answer != nil {
			putBody(r.answer)
		}
		return
	}
	p.done <- r
}

// failForwards fails with err the forwards written to oc (nil: those not
// written anywhere, which a failed dial leaves) and drops their queued
// frames. Forwards queued but not yet written when oc is lost stay
// queued for the next connection.
func (s *sender) failForwards(oc *outConn, err error) {
	var failed []*pendingForward
	s.mu.Lock()
	for id, p := range s.pending {
		if p.conn == oc {
			failed = append(failed, p)
			delete(s.pending, id)
		}
	}
	if oc == nil {
		clear(s.ctrl)
		s.ctrl = s.ctrl[:0]
	} else {
		// Cancels name requests of oc; a queued forward keeps its place.
		s.conn = nil
		kept := s.ctrl[:0]
		for _, f := range s.ctrl {
			if f.kind != frameCancel {
				kept = append(kept, f)
			}
		}
		clear(s.ctrl[len(kept):])
		s.ctrl = kept
	}
	s.mu.Unlock()
	for _, p := range failed {
		p.done <- forwardResult{err: err}
	}
}

// readForward reads a forwarded request of n payload bytes and starts
// its ForwardHandler call. The request's budget is taken before its body
// is read, so what all connections hold is bounded; a request that does
// not fit is skipped and refused (503) rather than waited for. A request
// that is malformed, or that this node does not execute, is refused
// alone too (a refusal frame); the connection goes on.
func (c *inConn) readForward(n uint32) error {
	id, err := c.fr.readID()
	if err != nil {
		return err
	}
	size := int64(n) - frameIDLen
	if c.t.cfg.Forward == nil {
		if err := c.fr.discard(size); err != nil {
			return err
		}
		c.refuseForward(id, &refusal{status: http.StatusNotImplemented, err: errNoForwardHandler})
		return nil
	}
	c.mu.Lock()
	_, dup := c.inflight[id]
	c.mu.Unlock()
	if dup {
		return c.refuse(frameForward, fmt.Errorf("%w: forward id %d is already in flight", ErrMalformedFrame, id))
	}
	if !c.t.fwdBudget.tryAcquire(size) {
		if err := c.fr.discard(size); err != nil {
			return err
		}
		c.refuseForward(id, &refusal{status: http.StatusServiceUnavailable, err: fmt.Errorf("%w: forwarded requests in progress hold the %d bytes this node gives them",
			errBusy, forwardBudgetBytes)})
		return nil
	}
	buf := getBody()
	err = c.fr.readPayload(buf, size)
	var req *ForwardedRequest
	if err == nil {
		req, err = DecodeForwardedRequest(buf.Bytes())
		if err != nil {
			err = &refusal{status: refusalStatus(err), err: err}
		}
	}
	putBody(buf) // the decoded request does not alias it: free it before the handler runs
	var r *refusal
	switch {
	case errors.As(err, &r):
		c.t.fwdBudget.release(size)
		c.refuseForward(id, r)
		return nil
	case err != nil:
		c.t.fwdBudget.release(size)
		return err
	case c.ctx.Err() != nil: // cut meanwhile
		c.t.fwdBudget.release(size)
		return c.ctx.Err()
	}
	ctx, cancel := context.WithCancelCause(c.ctx)
	c.mu.Lock()
	c.inflight[id] = cancel
	c.mu.Unlock()
	c.handlers.Add(1)
	go c.execute(ctx, cancel, id, req, size)
	return nil
}

// refuseForward counts, logs and answers the refusal of forward id. A
// node too busy (503) may refuse many in a burst: only counted, and
// logged at debug level.
func (c *inConn) refuseForward(id uint64, r *refusal) {
	c.c.refusedForwards.Add(1)
	level := slog.LevelWarn
	if r.status == http.StatusServiceUnavailable {
		level = slog.LevelDebug
	}
	c.t.log.Log(c.ctx, level, "transport: refused a forwarded request", "peer", hexID(c.from), "remote", c.remote, "status", r.status, "err", r.err)
	c.push(outFrame{kind: frameRefusal, id: id, status: r.status, body: refusalText(r.err)})
}

// execute runs one ForwardHandler call and queues its answer, which gives
// the request's budget back once written. An answer that cannot be
// encoded is refused (500) rather than relayed.
func (c *inConn) execute(ctx context.Context, cancel context.CancelCauseFunc, id uint64, req *ForwardedRequest, budget int64) {
	defer c.handlers.Done()
	resp := c.t.cfg.Forward(ctx, c.from, req)
	c.c.forwardsReceived.Add(1)
	c.mu.Lock()
	delete(c.inflight, id)
	c.mu.Unlock()
	abandoned := ctx.Err() != nil
	cancel(nil)
	if abandoned { // the sender gave up or is gone: the answer has nowhere to go
		c.t.fwdBudget.release(budget)
		return
	}
	out, err := EncodeForwardedResponse(resp)
	if err != nil {
		c.t.fwdBudget.release(budget)
		c.t.log.Error("transport: the forward handler returned an answer that cannot be relayed", "peer", hexID(c.from),
			"method", req.Method, "path", clip(req.Path), "err", err)
		c.push(outFrame{kind: frameRefusal, id: id, status: http.StatusInternalServerError,
			body: refusalText(fmt.Errorf("transport: the primary's answer cannot be relayed: %w", err))})
		return
	}
	c.push(outFrame{kind: frameAnswer, id: id, body: out, release: budget})
}

// readCancel reads a cancel frame and cancels the ForwardHandler call it
// names, if it is still in progress (its answer may have crossed the
// cancel).
func (c *inConn) readCancel() error {
	id, err := c.fr.readID()
	if err != nil {
		return err
	}
	c.mu.Lock()
	cancel := c.inflight[id]
	c.mu.Unlock()
	if cancel != nil {
		cancel(errForwardAbandoned)
	}
	return nil
}

// byteBudget bounds the bytes held at once. It never waits: a
// connection's reader that stopped for a forward would stall the raft
// messages behind it on the connection, and with them the commits the
// forwards in progress may be waiting for.
type byteBudget struct {
	free atomic.Int64
}

func newByteBudget(n int64) *byteBudget {
	b := new(byteBudget)
	b.free.Store(n)
	return b
}

// tryAcquire takes n bytes if they are free.
func (b *byteBudget) tryAcquire(n int64) bool {
	for {
		free := b.free.Load()
		if free < n {
			return false
		}
		if b.free.CompareAndSwap(free, free-n) {
			return true
		}
	}
}

// release returns n bytes taken by tryAcquire.
func (b *byteBudget) release(n int64) { b.free.Add(n) }
