package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/ids"
)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestNewRejectsBadConfig(t *testing.T) {
	p := newPKI(t)
	ok := client.Config{Address: "127.0.0.1:8000", ServiceCertPEM: p.service.certPEM, CertPEM: p.user.certPEM, KeyPEM: p.user.keyPEM}
	if _, err := client.New(ok); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	other := newPKI(t)
	for _, tc := range []struct {
		name string
		edit func(*client.Config)
		want string
	}{
		{"no address", func(c *client.Config) { c.Address = "" }, "Address is empty"},
		{"no port", func(c *client.Config) { c.Address = "127.0.0.1" }, "want \"host:port\""},
		{"http scheme", func(c *client.Config) { c.Address = "http://127.0.0.1:8000" }, "scheme must be https"},
		{"path", func(c *client.Config) { c.Address = "https://127.0.0.1:8000/app" }, "only scheme, host and port"},
		{"no service cert", func(c *client.Config) { c.ServiceCertPEM = nil }, "ServiceCertPEM is empty"},
		{"service cert not PEM", func(c *client.Config) { c.ServiceCertPEM = []byte("hello") }, "no PEM CERTIFICATE"},
		{"cert without key", func(c *client.Config) { c.KeyPEM = nil }, "CertPEM given without KeyPEM"},
		{"key without cert", func(c *client.Config) { c.CertPEM = nil }, "KeyPEM given without CertPEM"},
		{"key of another cert", func(c *client.Config) { c.KeyPEM = other.user.keyPEM }, "CertPEM/KeyPEM"},
		{"negative timeout", func(c *client.Config) { c.Timeout = -time.Second }, "negative"},
		{"transport and PEM", func(c *client.Config) { c.Transport = http.DefaultTransport }, "Transport carries its own TLS config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			_, err := client.New(cfg)
			if !errors.Is(err, client.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v; want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
	for _, addr := range []string{"localhost:443", "https://localhost", "https://127.0.0.1:8000/", "[::1]:8000"} {
		cfg := ok
		cfg.Address = addr
		if _, err := client.New(cfg); err != nil {
			t.Errorf("Address %q: %v", addr, err)
		}
	}
}

func TestLogWriteAndRead(t *testing.T) {
	f, c := setup(t)
	for i, scope := range []client.Scope{client.Private, client.Public} {
		tx, err := c.LogWrite(ctx(t), scope, 42, "hello \"quoted\" \u00e9", client.WriteOptions{})
		if err != nil {
			t.Fatalf("LogWrite %s: %v", scope, err)
		}
		if want := (client.TxID{View: 2, Seqno: ids.Seqno(i + 1)}); tx != want {
			t.Fatalf("LogWrite %s = %v, want %v", scope, tx, want)
		}
		f.mu.Lock()
		body, url := f.lastBody, f.lastURL
		f.mu.Unlock()
		if url != "/app/log/"+string(scope) {
			t.Errorf("request URI %q", url)
		}
		if _, has := body["record_claim"]; has || body["id"] != float64(42) || len(body) != 2 {
			t.Errorf("body %v; want exactly id and msg", body)
		}
		msg, err := c.LogRead(ctx(t), scope, 42)
		if err != nil || msg != "hello \"quoted\" \u00e9" {
			t.Fatalf("LogRead %s = %q, %v", scope, msg, err)
		}
	}

	if _, err := c.LogWrite(ctx(t), client.Private, 7, "m", client.WriteOptions{RecordClaim: true, WaitCommit: true}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	body, url := f.lastBody, f.lastURL
	f.mu.Unlock()
	if url != "/app/log/private?wait=commit" || body["record_claim"] != true {
		t.Errorf("WaitCommit+RecordClaim sent %q %v", url, body)
	}

	_, err := c.LogRead(ctx(t), client.Public, 999)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Code != "ResourceNotFound" || ae.Message != "no entry 999" {
		t.Fatalf("LogRead missing: %#v", err)
	}
	if !errors.Is(err, client.ErrNotFound) {
		t.Errorf("missing entry does not match ErrNotFound: %v", err)
	}
	if !strings.Contains(err.Error(), "GET /app/log/public?id=999") {
		t.Errorf("error does not name the request: %v", err)
	}
}

func TestLogWriteTxIDFromBodyWhenNoHeader(t *testing.T) {
	f, c := setup(t)
	f.mu.Lock()
	f.noHeader = true
	f.mu.Unlock()
	tx, err := c.LogWrite(ctx(t), client.Public, 1, "x", client.WriteOptions{})
	if err != nil || tx != (client.TxID{View: 2, Seqno: 1}) {
		t.Fatalf("LogWrite = %v, %v", tx, err)
	}
}

func TestBadScope(t *testing.T) {
	_, c := setup(t)
	if _, err := c.LogWrite(ctx(t), "secret", 1, "x", client.WriteOptions{}); !errors.Is(err, client.ErrBadScope) {
		t.Fatalf("LogWrite: %v", err)
	}
	if _, err := c.LogRead(ctx(t), "", 1); !errors.Is(err, client.ErrBadScope) {
		t.Fatalf("LogRead: %v", err)
	}
}

func TestTxStatusCommitNetworkReady(t *testing.T) {
	f, c := setup(t)
	if err := c.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	tx, err := c.LogWrite(ctx(t), client.Private, 1, "x", client.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []client.TxStatus{client.StatusPending, client.StatusCommitted, client.StatusInvalid} {
		f.mu.Lock()
		f.status[tx] = want
		f.mu.Unlock()
		if got, err := c.TxStatus(ctx(t), tx); err != nil || got != want {
			t.Fatalf("TxStatus = %q, %v; want %q", got, err, want)
		}
	}
	if got, err := c.TxStatus(ctx(t), client.TxID{View: 9, Seqno: 9}); err != nil || got != client.StatusUnknown {
		t.Fatalf("TxStatus unknown = %q, %v", got, err)
	}
	f.mu.Lock()
	f.status[tx] = "Maybe"
	f.mu.Unlock()
	if _, err := c.TxStatus(ctx(t), tx); !errors.Is(err, client.ErrBadResponse) {
		t.Fatalf("TxStatus with unknown status word: %v", err)
	}

	if got, err := c.Commit(ctx(t)); err != nil || got != tx {
		t.Fatalf("Commit = %v, %v; want %v", got, err, tx)
	}
	n, err := c.Network(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if n.ServiceStatus != "Open" || n.CurrentView != 2 || len(n.Nodes) != 1 || !n.Nodes[0].Primary || n.Nodes[0].RPCAddress != "127.0.0.1:8000" || n.Nodes[0].NodeID != "ab12" {
		t.Fatalf("Network = %+v", n)
	}
}

func TestWaitCommitted(t *testing.T) {
	f, c := setup(t)
	tx, err := c.LogWrite(ctx(t), client.Private, 1, "x", client.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.commitAt[tx] = 4
	f.mu.Unlock()
	if err := c.WaitCommitted(ctx(t), tx); err != nil {
		t.Fatalf("WaitCommitted: %v", err)
	}
	f.mu.Lock()
	polls := f.polls[tx]
	f.mu.Unlock()
	if polls != 4 {
		t.Errorf("polled %d times, want 4 (stop as soon as committed)", polls)
	}

	bad, _ := c.LogWrite(ctx(t), client.Private, 2, "x", client.WriteOptions{})
	f.mu.Lock()
	f.status[bad] = client.StatusInvalid
	f.mu.Unlock()
	if err := c.WaitCommitted(ctx(t), bad); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("WaitCommitted on Invalid: %v", err)
	}

	stuck, _ := c.LogWrite(ctx(t), client.Private, 3, "x", client.WriteOptions{})
	cctx, cancel := context.WithCancel(ctx(t))
	cancel()
	if err := c.WaitCommitted(cctx, stuck); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitCommitted with cancelled ctx: %v", err)
	}
}

func TestReceipt(t *testing.T) {
	f, c := setup(t)
	tx, err := c.LogWrite(ctx(t), client.Private, 1, "x", client.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Receipt(ctx(t), tx); !errors.Is(err, client.ErrPending) {
		t.Fatalf("Receipt of pending tx: %v", err)
	}
	f.mu.Lock()
	f.status[tx] = client.StatusCommitted
	f.mu.Unlock()
	r, err := c.Receipt(ctx(t), tx)
	if err != nil {
		t.Fatal(err)
	}
	if r.TransactionID != tx.String() || r.LeafComponents.CommitEvidence != fakeCommitEvidence(tx) || !bytes.Equal(r.COSEReceipt, []byte{0xd2, 0x84}) {
		t.Fatalf("Receipt = %+v", r)
	}

	for name, body := range map[string]func(ids.TxID) []byte{
		"another tx's receipt": func(ids.TxID) []byte { return validReceipt(ids.TxID{View: 2, Seqno: 77}) },
		"malformed":            func(tx ids.TxID) []byte { return []byte(`{"transaction_id":"` + tx.String() + `"}`) },
	} {
		f.mu.Lock()
		f.receiptJSON = body
		f.mu.Unlock()
		if r, err := c.Receipt(ctx(t), tx); !errors.Is(err, client.ErrBadResponse) {
			t.Errorf("%s: Receipt = %+v, %v; want ErrBadResponse", name, r, err)
		}
	}

	_, err = c.Receipt(ctx(t), client.TxID{View: 1, Seqno: 99})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "TransactionNotFound" || !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Receipt of unknown tx: %v", err)
	}
}

func TestDoAndNonJSONError(t *testing.T) {
	p := newPKI(t)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]int
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeErr(w, 400, "InvalidInput", err.Error())
			return
		}
		w.Header().Set("X-Seen", r.URL.RawQuery)
		writeJSON(w, 201, map[string]int{"double": 2 * in["n"]})
	})
	mux.HandleFunc("GET /proxy", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	})
	mux.HandleFunc("GET /garbage", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-coco-txid", "not-a-txid")
		_, _ = w.Write([]byte("{"))
	})
	mux.HandleFunc("POST /app/log/private", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-coco-txid", "1.0")
	})
	srv := startNode(t, mux, p.node.tlsCert(t), 0)
	c, err := client.New(client.Config{Address: srv.Listener.Addr().String(), ServiceCertPEM: p.service.certPEM, CertPEM: p.user.certPEM, KeyPEM: p.user.keyPEM})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()

	var out struct{ Double int }
	hdr, err := c.Do(ctx(t), http.MethodPost, "/echo?x=1", map[string]int{"n": 21}, &out)
	if err != nil || out.Double != 42 || hdr.Get("X-Seen") != "x=1" {
		t.Fatalf("Do = %v, %+v, %v", hdr, out, err)
	}

	_, err = c.Do(ctx(t), http.MethodGet, "/proxy", nil, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "" || ae.Message != "upstream exploded" {
		t.Fatalf("non-JSON error: %#v", err)
	}
	if !strings.Contains(err.Error(), "502 Bad Gateway: upstream exploded") {
		t.Errorf("error text %q", err)
	}

	if _, err := c.Do(ctx(t), http.MethodGet, "/garbage", nil, &out); !errors.Is(err, client.ErrBadResponse) {
		t.Fatalf("malformed JSON: %v", err)
	}
	if _, err := c.LogWrite(ctx(t), client.Private, 1, "x", client.WriteOptions{}); !errors.Is(err, client.ErrBadResponse) || !errors.Is(err, ids.ErrBadTxID) {
		t.Fatalf("bad txid header: %v", err)
	}
	if _, err := c.Do(ctx(t), http.MethodGet, "node/ready", nil, nil); err == nil {
		t.Fatal("relative path accepted")
	}
}

func TestRefusesServerNotEndorsedByServiceCert(t *testing.T) {
	p := newPKI(t)
	rogue := newPKI(t) // same names and SANs, another service identity
	f := newFakeNode(t, p.user.cert)
	srv := startNode(t, f.handler(), rogue.node.tlsCert(t), 0)
	c, err := client.New(client.Config{Address: srv.Listener.Addr().String(), ServiceCertPEM: p.service.certPEM, CertPEM: p.user.certPEM, KeyPEM: p.user.keyPEM})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.LogWrite(ctx(t), client.Private, 1, "secret", client.WriteOptions{})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("LogWrite to a rogue node: %v; want x509.UnknownAuthorityError", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seqno != 0 {
		t.Fatal("the rogue node received the write")
	}
}

func TestRefusesTLS12(t *testing.T) {
	p := newPKI(t)
	f := newFakeNode(t, p.user.cert)
	srv := startNode(t, f.handler(), p.node.tlsCert(t), tls.VersionTLS12)
	c, err := client.New(client.Config{Address: srv.Listener.Addr().String(), ServiceCertPEM: p.service.certPEM})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(ctx(t)); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("Ready over TLS 1.2: %v", err)
	}
}

func TestTransportOverride(t *testing.T) {
	p := newPKI(t)
	f := newFakeNode(t, p.user.cert)
	srv := startNode(t, f.handler(), p.node.tlsCert(t), 0)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{p.user.tlsCert(t)}
	tr.TLSClientConfig.RootCAs = x509.NewCertPool()
	tr.TLSClientConfig.RootCAs.AddCert(p.service.cert)
	tr.TLSClientConfig.MinVersion = tls.VersionTLS13
	c, err := client.New(client.Config{Address: srv.URL, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(ctx(t)); err != nil {
		t.Fatalf("Ready through the caller's transport: %v", err)
	}
}
