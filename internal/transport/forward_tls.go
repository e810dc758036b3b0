package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// forwardTimeout caps a Forward whatever its context: a primary whose
	// handler hangs must not hold the backup's client forever. A dead
	// connection is detected sooner, by the HTTP/2 pings.
	forwardTimeout = time.Minute
	// forwardBudgetBytes bounds the encoded forwarded requests a node holds
	// at once (read, decoded, being executed), whatever the number of
	// streams and peers: four at the largest, thousands of usual size.
	// Decoding briefly holds a second and third copy of one request.
	forwardBudgetBytes = 4 * MaxForwardWireBytes
)

// errNoForwardHandler is the refusal of a forwarded request by a node
// configured without a ForwardHandler.
var errNoForwardHandler = errors.New("transport: this node does not execute forwarded requests")

// Forward posts req to peer to over the peer's HTTP/2 connection (the
// one its sender uses: a new stream, so it waits neither for a batch in
// flight nor for the sender's backoff) and returns the decoded answer.
// It gives up when ctx is done, after forwardTimeout, when the peer is
// removed by SetPeers or when the transport closes.
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

// forward posts one encoded request and decodes the answer.
func (s *sender) forward(ctx context.Context, body []byte) (*ForwardedResponse, error) {
	rctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // peer removed, transport closed
	defer stop()
	hreq, err := http.NewRequestWithContext(rctx, http.MethodPost, s.fwdURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("transport: forwarding to peer %x: %w", s.peer.ID, err)
	}
	hreq.Header.Set("Content-Type", ForwardContentType)
	resp, err := s.rt.RoundTrip(hreq)
	if err != nil {
		return nil, s.forwardError(ctx, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return nil, &RefusedError{Peer: s.peer.ID, Path: ForwardPath, Status: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
	}
	if ct := resp.Header.Get("Content-Type"); ct != ForwardContentType {
		return nil, fmt.Errorf("%w: peer %x answered with content type %q, want %q", ErrBadForward, s.peer.ID, ct, ForwardContentType)
	}
	if resp.ContentLength > MaxForwardWireBytes {
		return nil, fmt.Errorf("%w: peer %x answered %d bytes, the limit is %d", ErrForwardTooLarge, s.peer.ID, resp.ContentLength, MaxForwardWireBytes)
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, MaxForwardWireBytes+1)); err != nil {
		return nil, s.forwardError(ctx, err)
	}
	if buf.Len() > MaxForwardWireBytes {
		return nil, fmt.Errorf("%w: peer %x answered over %d bytes", ErrForwardTooLarge, s.peer.ID, MaxForwardWireBytes)
	}
	out, err := DecodeForwardedResponse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("transport: the answer of peer %x: %w", s.peer.ID, err)
	}
	return out, nil
}

// forwardError says why a forward got no answer: the caller's context,
// the peer's removal or the transport's closing first (they caused the
// network error), then the peer's identity, then the network.
func (s *sender) forwardError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("transport: forwarding to peer %x: %w", s.peer.ID, context.Cause(ctx))
	case s.t.ctx.Err() != nil:
		return ErrClosed
	case s.ctx.Err() != nil:
		return fmt.Errorf("%w: %x was removed while forwarding", ErrUnknownPeer, s.peer.ID)
	}
	var herr *HandshakeError
	if errors.As(err, &herr) {
		return herr
	}
	return fmt.Errorf("%w: forwarding to peer %x at %s: %w", ErrUnreachable, s.peer.ID, s.peer.Address, err)
}

// serveForward executes one forwarded request from a current peer:
// POST ForwardPath. Transport-level refusals are error statuses with a
// text/plain explanation; the application's answer, whatever its status,
// is 200 with the encoded ForwardedResponse.
func (t *TLS) serveForward(w http.ResponseWriter, r *http.Request, from uint64, c *counters) {
	refuse := func(status int, err error) {
		c.refusedForwards.Add(1)
		t.log.Warn("transport: refused a forwarded request", "peer", hexID(from), "remote", r.RemoteAddr, "status", status, "err", err)
		http.Error(w, err.Error(), status)
	}
	if t.cfg.Forward == nil {
		refuse(http.StatusNotImplemented, errNoForwardHandler)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != ForwardContentType {
		refuse(http.StatusUnsupportedMediaType, fmt.Errorf("%w: content type %q, want %q", ErrBadForward, ct, ForwardContentType))
		return
	}
	if r.ContentLength > MaxForwardWireBytes {
		refuse(http.StatusRequestEntityTooLarge, fmt.Errorf("%w: %d bytes, the limit is %d", ErrForwardTooLarge, r.ContentLength, MaxForwardWireBytes))
		return
	}
	// HTTP/2 holds a stream to its declared length, so the budget taken
	// for it bounds what is read; without one, the most a request may be.
	limit := int64(MaxForwardWireBytes)
	if r.ContentLength >= 0 {
		limit = r.ContentLength
	}
	if err := t.fwdBudget.acquire(r.Context(), limit); err != nil {
		http.Error(w, "transport: closing or cancelled", http.StatusServiceUnavailable)
		return
	}
	defer t.fwdBudget.release(limit)

	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var req *ForwardedRequest
	if err == nil {
		req, err = DecodeForwardedRequest(buf.Bytes())
	}
	putBody(buf) // the decoded request does not alias it: free it before the handler runs
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge) || errors.Is(err, ErrForwardTooLarge):
			refuse(http.StatusRequestEntityTooLarge, err)
		case errors.Is(err, ErrBadForward) || errors.Is(err, ErrUnsupportedVersion):
			refuse(http.StatusBadRequest, err)
		default: // the stream broke: nobody to answer
			t.log.Debug("transport: reading a forwarded request failed", "peer", hexID(from), "err", err)
			http.Error(w, "transport: reading the request: "+err.Error(), http.StatusBadRequest)
		}
		return
	}

	resp := t.cfg.Forward(r.Context(), from, req)
	c.forwardsReceived.Add(1)
	if r.Context().Err() != nil {
		return // the sender gave up: the answer has nowhere to go
	}
	out, err := EncodeForwardedResponse(resp)
	if err != nil {
		t.log.Error("transport: the forward handler returned an answer that cannot be relayed", "peer", hexID(from),
			"method", req.Method, "path", clip(req.Path), "err", err)
		http.Error(w, "transport: the primary's answer cannot be relayed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ForwardContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out) // a write error means the sender is gone
}

// byteBudget is a weighted semaphore over bytes, first come first
// served: a large request waits for its turn rather than being starved
// by a stream of small ones.
type byteBudget struct {
	mu      sync.Mutex
	free    int64
	waiters []*budgetWaiter
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when the bytes are granted
}

func newByteBudget(n int64) *byteBudget { return &byteBudget{free: n} }

// acquire takes n bytes, waiting for them while ctx allows. n must not
// exceed the budget's size.
func (b *byteBudget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if len(b.waiters) == 0 && b.free >= n {
		b.free -= n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give the bytes back
		b.free += n
	default:
		i := 0
		for b.waiters[i] != w {
			i++
		}
		b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
	}
	b.grantLocked() // a removed head may have blocked smaller requests
	return ctx.Err()
}

// release returns n bytes taken by acquire.
func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.free += n
	b.grantLocked()
	b.mu.Unlock()
}

func (b *byteBudget) grantLocked() {
	for len(b.waiters) > 0 && b.free >= b.waiters[0].n {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.free -= w.n
		close(w.ready)
	}
}
