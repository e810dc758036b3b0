package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cocoledger/coco/internal/app"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
)

// TxIDHeader carries the TxID of every write.
const TxIDHeader = "x-coco-txid"

type httpServer struct {
	srv *http.Server
}

func (n *Node) newHTTPServer() *httpServer {
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Client certificates are requested, not verified against a CA:
		// users and members are self-signed and identified by fingerprint
		// in the governance tables. TLS 1.3 still proves the client holds
		// the key (CertificateVerify).
		ClientAuth: tls.RequestClientCert,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{n.nodeCert.Raw, n.serviceCert.Raw},
			PrivateKey:  n.nodeKey,
			Leaf:        n.nodeCert,
		}},
		NextProtos: []string{"h2", "http/1.1"},
	}
	srv := &http.Server{
		Handler:           n,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       withConnIdentity,
		// Failed handshakes (a client without the pinned CA, a port scan)
		// are the client's problem: debug, not noise.
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	return &httpServer{srv: srv}
}

func (s *httpServer) serve(ln net.Listener) error {
	err := s.srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *httpServer) shutdown(ctx context.Context) {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
}

// ServeHTTP routes a request: node endpoints, the receipt endpoint, then
// the app registry.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := n.clock.Now()
	rw := &statusWriter{ResponseWriter: w}
	n.route(rw, r)
	n.observeRequest(r.URL.Path, rw.status, n.clock.Now().Sub(start))
}

func (n *Node) route(w *statusWriter, r *http.Request) {
	if h, ok := n.builtins[r.URL.Path]; ok {
		if r.Method != h.method {
			w.Header().Set("Allow", h.method)
			writeError(w, app.Errorf(http.StatusMethodNotAllowed, app.CodeMethodNotAllowed, "%s does not accept %s; use %s", r.URL.Path, r.Method, h.method))
			return
		}
		if h.auth != app.NoAuth {
			if _, aerr := n.authenticate(r, h.auth); aerr != nil {
				writeError(w, aerr)
				return
			}
		}
		h.serve(w, r)
		return
	}
	ep, params, allowed := n.apps.Lookup(r.Method, r.URL.Path)
	if ep == nil {
		if allowed != nil {
			w.Header().Set("Allow", fmt.Sprint(allowed))
			writeError(w, app.Errorf(http.StatusMethodNotAllowed, app.CodeMethodNotAllowed, "%s does not accept %s; allowed: %v", r.URL.Path, r.Method, allowed))
			return
		}
		writeError(w, app.Errorf(http.StatusNotFound, app.CodeNotFound, "no endpoint %s %s (see GET /node/api)", r.Method, r.URL.Path))
		return
	}
	n.serveApp(w, r, ep, params)
}

// authenticate maps the client certificate to a caller allowed by policy.
func (n *Node) authenticate(r *http.Request, policy app.AuthPolicy) (app.Caller, *app.Error) {
	if policy == app.NoAuth {
		return app.Caller{}, nil
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return app.Caller{}, app.Errorf(http.StatusUnauthorized, app.CodeMissingCert, "this endpoint needs a TLS client certificate")
	}
	cert := r.TLS.PeerCertificates[0]
	now := n.clock.Now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return app.Caller{}, app.Errorf(http.StatusUnauthorized, app.CodeUnknownCaller, "client certificate is not valid now (valid %s to %s)",
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	id := certID(r, cert)
	tx := n.store.Begin()
	role, table, other, want := app.RoleUser, app.UsersTable, app.MembersTable, "users"
	if policy == app.MemberCert {
		role, table, other, want = app.RoleMember, app.MembersTable, app.UsersTable, "members"
	}
	if _, ok := tx.Get(table, []byte(id)); ok {
		return app.Caller{Role: role, ID: id, Cert: cert}, nil
	}
	if _, ok := tx.Get(other, []byte(id)); ok {
		return app.Caller{}, app.Errorf(http.StatusForbidden, app.CodeForbidden, "caller %s is not allowed here: this endpoint is for %s", id, want)
	}
	return app.Caller{}, app.Errorf(http.StatusUnauthorized, app.CodeUnknownCaller, "client certificate %s is not a known user or member", id)
}

// connIdentityKey marks the per-connection identity cache in a request's
// context.
type connIdentityKey struct{}

// connIdentity caches the fingerprint of a connection's client certificate:
// TLS 1.3 has no renegotiation, so it is fixed for the connection's life,
// and hashing it on every request was a measurable share of a write.
type connIdentity struct {
	once sync.Once
	cert *x509.Certificate
	id   string
}

func withConnIdentity(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connIdentityKey{}, &connIdentity{})
}

func certID(r *http.Request, cert *x509.Certificate) string {
	ci, ok := r.Context().Value(connIdentityKey{}).(*connIdentity)
	if !ok {
		return ids.Fingerprint(cert.Raw)
	}
	ci.once.Do(func() { ci.cert, ci.id = cert, ids.Fingerprint(cert.Raw) })
	if ci.cert != cert {
		return ids.Fingerprint(cert.Raw)
	}
	return ci.id
}

func (n *Node) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *app.Error) {
	if r.ContentLength > n.cfg.HTTP.MaxBodyBytes {
		return nil, app.Errorf(http.StatusRequestEntityTooLarge, app.CodePayloadTooLarge, "body is %d bytes, the limit is %d", r.ContentLength, n.cfg.HTTP.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, n.cfg.HTTP.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, app.Errorf(http.StatusRequestEntityTooLarge, app.CodePayloadTooLarge, "body exceeds the limit of %d bytes", n.cfg.HTTP.MaxBodyBytes)
		}
		return nil, app.Errorf(http.StatusBadRequest, app.CodeInvalidInput, "reading body: %v", err)
	}
	return body, nil
}

type txResponse struct {
	TransactionID string `json:"transaction_id"`
}

// serveApp runs an app endpoint: authenticate, execute on a snapshot,
// commit (re-running on conflict), and answer with the TxID.
func (n *Node) serveApp(w http.ResponseWriter, r *http.Request, ep *app.Endpoint, params app.Params) {
	caller, aerr := n.authenticate(r, ep.Auth)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if strings.HasPrefix(ep.Path, "/app/") && !n.serviceOpen() {
		writeError(w, app.Errorf(http.StatusServiceUnavailable, app.CodeServiceNotOpen,
			"the service is not open yet: its members open it by a transition_service_to_open proposal (GET /gov/service shows its status)"))
		return
	}
	query := r.URL.Query()
	waitCommit := false
	if vals, ok := query["wait"]; ok {
		if ep.Mode != app.ReadWrite || len(vals) != 1 || vals[0] != "commit" {
			writeError(w, app.Errorf(http.StatusBadRequest, app.CodeInvalidInput, `query parameter "wait" is only "wait=commit", on writes`))
			return
		}
		waitCommit = true
		query.Del("wait")
	}
	var body []byte
	if ep.Mode == app.ReadWrite {
		if body, aerr = n.readBody(w, r); aerr != nil {
			writeError(w, aerr)
			return
		}
		if !n.isPrimary() {
			n.forward(w, r, body)
			return
		}
	}
	req := &app.Request{Ctx: r.Context(), Method: r.Method, Path: r.URL.Path, Query: query, Header: r.Header, Body: body, Caller: caller, Params: params}
	for attempt := 1; ; attempt++ {
		tx := n.store.Begin()
		c := app.NewContext(tx, req)
		if err := ep.Handler(c); err != nil {
			writeHandlerError(w, err)
			return
		}
		status, out := c.Response()
		if !tx.HasWrites() {
			writeJSON(w, status, out)
			return
		}
		if ep.Mode != app.ReadWrite {
			writeError(w, app.Errorf(http.StatusInternalServerError, app.CodeInternal, "read-only endpoint %s %s tried to write", ep.Method, ep.Path))
			return
		}
		txid, err := n.commitTx(tx, c.ClaimsDigest())
		if errors.Is(err, kv.ErrConflict) {
			n.metrics.conflicts.Inc()
			if attempt < n.cfg.HTTP.MaxConflictRetries {
				continue
			}
			writeError(w, app.Errorf(http.StatusConflict, app.CodeConflict, "transaction conflicted with concurrent writes %d times; retry", attempt))
			return
		}
		if err != nil {
			writeError(w, nodeError(err))
			return
		}
		w.Header().Set(TxIDHeader, txid.String())
		if waitCommit {
			if aerr := n.awaitCommit(r.Context(), txid); aerr != nil {
				writeError(w, aerr)
				return
			}
		}
		if out == nil {
			out = txResponse{TransactionID: txid.String()}
		}
		writeJSON(w, status, out)
		return
	}
}

func (n *Node) awaitCommit(ctx context.Context, txid ids.TxID) *app.Error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.HTTP.CommitWaitTimeoutMS)*time.Millisecond)
	defer cancel()
	switch err := n.waitCommitted(ctx, txid); {
	case err == nil:
		return nil
	case errors.Is(err, errCommitInvalid):
		return app.Errorf(http.StatusInternalServerError, app.CodeTxInvalid, "transaction %s was executed but lost before it committed (Invalid); it did not happen", txid)
	case errors.Is(err, ErrFailed):
		return nodeError(err)
	default:
		return app.Errorf(http.StatusGatewayTimeout, app.CodeCommitTimeout, "transaction %s executed but was not committed within %d ms; ask GET /node/tx?transaction_id=%s", txid, n.cfg.HTTP.CommitWaitTimeoutMS, txid)
	}
}

func nodeError(err error) *app.Error {
	if errors.Is(err, ErrNotPrimary) {
		return notPrimaryError()
	}
	if errors.Is(err, ErrFailed) {
		return app.Errorf(http.StatusServiceUnavailable, app.CodeNodeFailed, "node cannot write its ledger and no longer accepts writes: %v", err)
	}
	return app.Errorf(http.StatusInternalServerError, app.CodeInternal, "%v", err)
}

func writeHandlerError(w http.ResponseWriter, err error) {
	var aerr *app.Error
	if errors.As(err, &aerr) {
		writeError(w, aerr)
		return
	}
	writeError(w, app.Errorf(http.StatusInternalServerError, app.CodeInternal, "%v", err))
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, e *app.Error) {
	writeJSON(w, e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	buf, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		buf = []byte(`{"error":{"code":"InternalError","message":"response does not encode as JSON"}}`)
	}
	buf = append(buf, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(status)
	w.Write(buf)
}

// statusWriter remembers the status for metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// serviceCertPEM is served by /node/network.
func (n *Node) serviceCertPEM() string { return string(crypto.CertPEM(n.serviceCert)) }
