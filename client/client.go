package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cocoledger/coco/internal/ids"
)

// TxID names a transaction as "view.seqno"; parse one with ParseTxID.
type TxID = ids.TxID

// ParseTxID parses "view.seqno", e.g. the value of an x-coco-txid header.
func ParseTxID(s string) (TxID, error) { return ids.ParseTxID(s) }

// DefaultTimeout bounds one call when Config.Timeout is zero. It is longer
// than a node's commit wait so that WaitCommit writes are answered by the
// node, not cut off by the client.
const DefaultTimeout = 30 * time.Second

const (
	// maxErrorBody bounds how much of an error answer is read.
	maxErrorBody = 64 << 10
	// maxBody bounds how much of a successful answer is decoded, so a
	// misbehaving node cannot make the client allocate without limit.
	maxBody = 64 << 20
)

// Config says where a Client connects and who it is.
type Config struct {
	// Address of the node: "host:port" or "https://host[:port]". The host is
	// also the name the node's certificate must carry (IP or DNS SAN).
	Address string
	// ServiceCertPEM is the service certificate (PEM), the only root CA the
	// client trusts. Required unless Transport is set.
	ServiceCertPEM []byte
	// CertPEM and KeyPEM are the caller's certificate and PKCS#8 (or SEC 1)
	// private key, both PEM. Give both or neither; without them the client
	// can only call endpoints that need no identity.
	CertPEM, KeyPEM []byte
	// Timeout bounds each call, including reading the answer; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// HTTP1 makes the client speak HTTP/1.1 with keep-alive instead of
	// HTTP/2. With one client per caller goroutine it costs less CPU per
	// request on both sides (Go's HTTP/2 hands every frame between
	// goroutines); HTTP/2 multiplexes many goroutines over one connection.
	HTTP1 bool
	// Transport replaces the client's own HTTPS transport, e.g. to add
	// tracing. It carries its own TLS configuration, so it excludes the PEM
	// fields above.
	Transport http.RoundTripper
}

// Client calls one node. See the package documentation for concurrency.
type Client struct {
	base string // "https://host:port", no trailing slash
	hc   http.Client
	// service is the SHA-256 of the service certificate's DER, which
	// signed governance requests name; zero with a custom Transport.
	service [32]byte
}

// New checks cfg and returns a client; it does not contact the node (use
// Ready for that).
func New(cfg Config) (*Client, error) {
	base, host, err := parseAddress(cfg.Address)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: Timeout %v is negative", ErrConfig, cfg.Timeout)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	rt := cfg.Transport
	if rt != nil {
		if cfg.ServiceCertPEM != nil || cfg.CertPEM != nil || cfg.KeyPEM != nil {
			return nil, fmt.Errorf("%w: Transport carries its own TLS config; leave ServiceCertPEM, CertPEM and KeyPEM empty", ErrConfig)
		}
	} else {
		tc, err := tlsConfig(host, cfg.ServiceCertPEM, cfg.CertPEM, cfg.KeyPEM)
		if err != nil {
			return nil, err
		}
		rt = newTransport(tc, cfg.HTTP1)
	}
	c := &Client{base: base, hc: http.Client{Transport: rt, Timeout: timeout}}
	if cfg.ServiceCertPEM != nil {
		if b, _ := pem.Decode(cfg.ServiceCertPEM); b != nil {
			c.service = sha256.Sum256(b.Bytes)
		}
	}
	return c, nil
}

// parseAddress returns the base URL and the host name to verify.
func parseAddress(addr string) (base, host string, err error) {
	if addr == "" {
		return "", "", fmt.Errorf("%w: Address is empty; want \"host:port\" or \"https://host:port\"", ErrConfig)
	}
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", "", fmt.Errorf("%w: Address %q: %v", ErrConfig, addr, err)
		}
		if u.Scheme != "https" {
			return "", "", fmt.Errorf("%w: Address %q: scheme must be https", ErrConfig, addr)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", "", fmt.Errorf("%w: Address %q: want only scheme, host and port", ErrConfig, addr)
		}
		if u.Hostname() == "" {
			return "", "", fmt.Errorf("%w: Address %q has no host", ErrConfig, addr)
		}
		return "https://" + u.Host, u.Hostname(), nil
	}
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("%w: Address %q: want \"host:port\": %v", ErrConfig, addr, err)
	}
	if h == "" || port == "" {
		return "", "", fmt.Errorf("%w: Address %q: want \"host:port\" with both parts", ErrConfig, addr)
	}
	return "https://" + net.JoinHostPort(h, port), h, nil
}

func tlsConfig(serverName string, servicePEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	if len(servicePEM) == 0 {
		return nil, fmt.Errorf("%w: ServiceCertPEM is empty; the client trusts only the service certificate", ErrConfig)
	}
	roots := x509.NewCertPool()
	n := 0
	for rest := servicePEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: ServiceCertPEM: %v", ErrConfig, err)
		}
		roots.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: ServiceCertPEM holds no PEM CERTIFICATE block", ErrConfig)
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    roots,
		ServerName: serverName,
	}
	switch {
	case len(certPEM) == 0 && len(keyPEM) == 0:
	case len(certPEM) == 0:
		return nil, fmt.Errorf("%w: KeyPEM given without CertPEM", ErrConfig)
	case len(keyPEM) == 0:
		return nil, fmt.Errorf("%w: CertPEM given without KeyPEM", ErrConfig)
	default:
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: CertPEM/KeyPEM: %v", ErrConfig, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

func newTransport(tc *tls.Config, http1 bool) *http.Transport {
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}
	if http1 {
		// Keep a connection per concurrent caller instead of the default
		// two, so steady load never reconnects.
		t.MaxIdleConnsPerHost = 256
		tc.NextProtos = []string{"http/1.1"}
	} else {
		// A custom TLS config turns HTTP/2 off unless asked for.
		t.ForceAttemptHTTP2 = true
	}
	return t
}

// CloseIdleConnections closes connections not in use; the client stays
// usable and reconnects on demand.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Do sends one JSON request: in (if not nil) is marshalled as the body, a 2xx
// answer's body is decoded into out (if not nil), and its headers returned.
// path starts with "/" and may carry a query. A non-2xx answer is an error
// wrapping *APIError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) (http.Header, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("client: %s %s: encode request: %w", method, path, err)
		}
	}
	var hdr http.Header
	err := c.call(ctx, method, path, body, func(r *http.Response) error {
		hdr = r.Header
		return decodeBody(r, out)
	})
	return hdr, err
}

// call sends one request and hands a 2xx answer to ok; the body is drained
// and closed afterwards so the stream ends cleanly rather than being reset.
func (c *Client) call(ctx context.Context, method, path string, body []byte, ok func(*http.Response) error) error {
	return c.callAs(ctx, method, path, "application/json", body, ok)
}

// callAs is call with the body's content type.
func (c *Client) callAs(ctx context.Context, method, path, contentType string, body []byte, ok func(*http.Response) error) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("client: %s %q: path must start with \"/\"", method, path)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header["Content-Type"] = []string{contentType}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("client: %s %s: %w", method, path, readAPIError(resp))
	}
	if err := ok(resp); err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	return nil
}

func readAPIError(r *http.Response) *APIError {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxErrorBody))
	e := &APIError{Status: r.StatusCode}
	var doc struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	switch {
	case err != nil:
		e.Message = "reading error body: " + err.Error()
	case json.Unmarshal(b, &doc) == nil && doc.Error.Code != "":
		e.Code, e.Message = doc.Error.Code, doc.Error.Message
	default:
		const show = 512
		if len(b) > show {
			b = b[:show]
		}
		e.Message = strings.TrimSpace(string(b))
	}
	return e
}

// decodeBody decodes r's JSON body into out; out == nil ignores the body.
func decodeBody(r *http.Response, out any) error {
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(out); err != nil {
		return fmt.Errorf("%w: status %d: %v", ErrBadResponse, r.StatusCode, err)
	}
	return nil
}

// parseWireTxID parses a transaction id received from a node.
func parseWireTxID(s string) (TxID, error) {
	id, err := ids.ParseTxID(s)
	if err != nil {
		return TxID{}, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return id, nil
}
