package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cocoledger/coco/internal/ids"
	"go.etcd.io/raft/v3/raftpb"
)

// sender owns one peer's queue and connection. Its goroutine (run) takes
// whatever is queued, up to the batch limits, and posts it as one batch;
// one batch is in flight at a time, so a peer receives a sender's
// messages in order.
type sender struct {
	t      *TLS
	peer   Peer
	c      *counters
	queue  chan raftpb.Message
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	rt     *http.Transport
	url    string
	fwdURL string
	// forwards counts the Forward calls using rt; run waits for them
	// before closing rt's connections, so none is left idle. Add only
	// under t.mu while the sender is in t.senders.
	forwards sync.WaitGroup

	lastErr string // last failure logged at warning level; "" when healthy
}

func (t *TLS) newSender(p Peer) *sender {
	s := &sender{
		t:     t,
		peer:  p,
		c:     t.stats.get(p.ID),
		queue: make(chan raftpb.Message, t.cfg.QueueLen),
		done:  make(chan struct{}),
		url:   "https://" + p.Address + RaftPath,
	}
	s.fwdURL = "https://" + p.Address + ForwardPath
	s.ctx, s.cancel = context.WithCancel(t.ctx)
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	s.rt = &http.Transport{
		Proxy:       nil, // never a proxy between nodes
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS13,
			// Always present the node certificate, even when the server
			// asks for another issuer: a node of another service is then
			// refused with the x509 error in the server's log, not as a
			// client without a certificate.
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &t.cfg.Cert, nil },
			RootCAs:              t.roots,
			// A peer is identified by its key, not by a host name: the
			// standard host name check is replaced by verifyPeer, which
			// checks the chain to the service certificate (RootCAs) and
			// that the key is the raft id dialled.
			InsecureSkipVerify: true,
			VerifyConnection:   s.verifyPeer,
			NextProtos:         []string{"h2"},
		},
		TLSHandshakeTimeout: handshakeTimeout,
		ForceAttemptHTTP2:   true,
		Protocols:           &protocols,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     5 * time.Minute,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     10 * time.Second,
		},
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

func (s *sender) run() {
	defer s.t.sendWG.Done()
	defer close(s.done)
	defer s.rt.CloseIdleConnections()
	defer s.forwards.Wait() // cancelled with s.ctx: they return promptly
	var (
		batch    []raftpb.Message
		carry    raftpb.Message
		hasCarry bool
		buf      []byte
		failures int
	)
	defer func() { // whatever is left was never sent
		n := len(s.queue)
		if hasCarry {
			n++
		}
		s.c.dropped.Add(uint64(n))
	}()
	for {
		batch = batch[:0]
		if hasCarry {
			batch, carry, hasCarry = append(batch, carry), raftpb.Message{}, false
		} else {
			select {
			case <-s.ctx.Done():
				return
			case m := <-s.queue:
				batch = append(batch, m)
			}
		}
		size := batchHeaderLen + messageCost(&batch[0])
		if size > MaxBatchBytes {
			s.c.dropped.Add(1)
			s.t.log.Error("transport: dropping a message larger than a batch may be",
				"peer", hexID(s.peer.ID), "type", batch[0].Type.String(), "bytes", size, "limit", MaxBatchBytes)
			continue
		}
	fill:
		for len(batch) < MaxBatchMessages {
			select {
			case m := <-s.queue:
				n := messageCost(&m)
				if size+n > MaxBatchBytes {
					carry, hasCarry = m, true
					break fill
				}
				size += n
				batch = append(batch, m)
			default:
				break fill
			}
		}
		var err error
		if buf, err = AppendBatch(buf[:0], batch); err == nil {
			err = s.post(buf)
		}
		if cap(buf) > 4<<20 {
			buf = nil
		}
		n := uint64(len(batch))
		clear(batch) // do not pin entries until the next batch
		if err == nil {
			s.c.sent.Add(n)
			if s.lastErr != "" {
				s.t.log.Info("transport: peer reachable again", "peer", hexID(s.peer.ID), "address", s.peer.Address)
				s.lastErr = ""
			}
			failures = 0
			continue
		}
		s.c.dropped.Add(n)
		if s.ctx.Err() != nil {
			return
		}
		s.logFailure(err, n)
		failures++
		delay := min(backoffMin<<min(failures-1, 10), backoffMax)
		timer := time.NewTimer(delay)
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// post sends one encoded batch and waits for the answer.
func (s *sender) post(body []byte) error {
	ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("transport: peer %x: %w", s.peer.ID, err)
	}
	req.Header.Set("Content-Type", ContentType)
	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		var herr *HandshakeError
		if errors.As(err, &herr) {
			return herr
		}
		return fmt.Errorf("transport: sending to peer %x at %s: %w", s.peer.ID, s.peer.Address, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return &RefusedError{Peer: s.peer.ID, Path: RaftPath, Status: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
}

// logFailure logs a failed batch: at warning level when the failure is new
// (the first, or a different error), at debug level while it repeats, so
// a peer that is down or misconfigured is reported once, not per
// heartbeat. Every failure is counted whatever the level.
func (s *sender) logFailure(err error, n uint64) {
	attrs := []any{"peer", hexID(s.peer.ID), "address", s.peer.Address, "messages", n, "err", err}
	msg := "transport: sending a batch failed"
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
