package transport

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cocoledger/coco/internal/detcbor"
)

// Forwarding wire constants (see doc.go for the format).
const (
	// ForwardWireVersion is the forwarded request and response format this
	// package writes and reads (key 0 of both maps).
	ForwardWireVersion = 1
	// MaxForwardBodyBytes bounds the body of a forwarded request and of its
	// answer. It is the largest write a client can make through a backup,
	// so it matches MaxBatchBytes, the largest entry raft can replicate;
	// the application's own request limit should not exceed it.
	MaxForwardBodyBytes = 64 << 20
	// MaxForwardMetaBytes bounds everything but the body: the bytes of
	// method, path, query, header names and values and caller
	// certificate. It is generous for a certificate chain's leaf and a
	// few headers, and keeps a hostile peer from making the receiver
	// allocate much beyond the body.
	MaxForwardMetaBytes = 64 << 10
	// MaxForwardHeaderFields bounds the header values (field lines) of a
	// forwarded request or response.
	MaxForwardHeaderFields = 64
	// MaxForwardWireBytes bounds an encoded forwarded request or response:
	// body and meta at their limits plus the CBOR framing (at most 9 bytes
	// of head per item: 27 per header value, about 100 for the rest).
	MaxForwardWireBytes = MaxForwardBodyBytes + MaxForwardMetaBytes + forwardFramingBytes

	forwardFramingBytes = 4 << 10
)

// ForwardedRequest is a client request that reached a backup, as the
// primary is to execute it. The backup has authenticated the caller;
// the primary trusts the backup (an endorsed node and a current peer) to
// say who called.
type ForwardedRequest struct {
	// Method is the HTTP method: a token (RFC 9110 §5.6.2).
	Method string
	// Path is the request's URL path as net/http decoded it
	// (URL.Path): it starts with "/", is valid UTF-8 and holds no ASCII
	// control character.
	Path string
	// RawQuery is the query, still escaped, without "?": valid UTF-8, no
	// ASCII control character, no "#".
	RawQuery string
	// Header holds only what the application needs to execute the
	// request: Content-Type and Accept. Encoding drops every other field
	// (authentication is done: the caller is CallerCert; the rest
	// describes the client's connection to the backup) and empty value
	// lists; the decoder refuses them. Values are valid UTF-8 without
	// control characters other than tab. The decoder always returns a
	// non-nil Header.
	Header http.Header
	// Body is the request body, at most MaxForwardBodyBytes.
	Body []byte
	// CallerCert is the DER of the client's TLS certificate as the backup
	// received it (not parsed here), empty when the client presented none.
	CallerCert []byte
}

// ForwardedResponse is the primary's answer to a ForwardedRequest, which
// the backup relays to the client.
type ForwardedResponse struct {
	// Status is the HTTP status: a final one, 200 to 599.
	Status int
	// Header is relayed unchanged (x-coco-txid, Content-Type, ...), but
	// for the fields that belong to one connection rather than to the
	// answer (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
	// Upgrade, TE, Trailer and Content-Length, which the body implies):
	// encoding drops them, and empty value lists, and makes names
	// canonical (merging "x-a" and "X-A"); the decoder refuses them.
	// Names are tokens; values are valid UTF-8 without control characters
	// other than tab. The decoder always returns a non-nil Header.
	Header http.Header
	// Body is the answer's body, at most MaxForwardBodyBytes.
	Body []byte
}

// forwardRequestWire is the CBOR map of a forwarded request. Integer keys
// (keyasint) keep it compact and fix the key order under core
// deterministic encoding; every key is always written (nil containers as
// empty), so a missing key is a non-canonical encoding.
type forwardRequestWire struct {
	Version    uint64              `cbor:"0,keyasint"`
	Method     string              `cbor:"1,keyasint"`
	Path       string              `cbor:"2,keyasint"`
	RawQuery   string              `cbor:"3,keyasint"`
	Header     map[string][]string `cbor:"4,keyasint"`
	Body       []byte              `cbor:"5,keyasint"`
	CallerCert []byte              `cbor:"6,keyasint"`
}

// forwardResponseWire is the CBOR map of a forwarded response.
type forwardResponseWire struct {
	Version uint64              `cbor:"0,keyasint"`
	Status  uint64              `cbor:"1,keyasint"`
	Header  map[string][]string `cbor:"2,keyasint"`
	Body    []byte              `cbor:"3,keyasint"`
}

var (
	fwdEnc = detcbor.EncMode(true)
	// Nesting: outer map → header map → value array → string is 3
	// levels; 4 is the library's minimum. A header map holds at most
	// MaxForwardHeaderFields names, each at most that many values.
	fwdDec = detcbor.DecMode(detcbor.Limits{
		MaxNestedLevels:  4,
		MaxArrayElements: MaxForwardHeaderFields,
		MaxMapPairs:      MaxForwardHeaderFields,
	})
)

// forwardedRequestHeaders are the only request header fields forwarded.
var forwardedRequestHeaders = map[string]bool{"Accept": true, "Content-Type": true}

// hopByHopHeaders describe one connection, not the answer: they are not
// relayed (RFC 9110 §7.6.1; Content-Length is recomputed from the body).
var hopByHopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true,
	"Upgrade": true, "Te": true, "Trailer": true, "Content-Length": true,
}

// EncodeForwardedRequest returns the deterministic CBOR encoding of req
// (see doc.go), keeping only the forwarded header fields. It refuses a
// request that breaks a field rule (ErrBadForward) or a limit
// (ErrForwardTooLarge).
func EncodeForwardedRequest(req *ForwardedRequest) ([]byte, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrBadForward)
	}
	w := forwardRequestWire{
		Version:    ForwardWireVersion,
		Method:     req.Method,
		Path:       req.Path,
		RawQuery:   req.RawQuery,
		Header:     normalizeHeader(req.Header, func(k string) bool { return forwardedRequestHeaders[k] }),
		Body:       req.Body,
		CallerCert: req.CallerCert,
	}
	return encodeStrict(&w)
}

// DecodeForwardedRequest decodes b strictly: it must be exactly what
// EncodeForwardedRequest writes for the request it holds (one encoding per
// request: no missing, unknown or duplicate keys, no non-canonical form,
// tag, indefinite length or trailing byte), of ForwardWireVersion, within
// the limits. It allocates in proportion to len(b), at most
// MaxForwardWireBytes. The request does not alias b.
func DecodeForwardedRequest(b []byte) (*ForwardedRequest, error) {
	var w forwardRequestWire
	if err := decodeStrict(b, &w, "request"); err != nil {
		return nil, err
	}
	return &ForwardedRequest{
		Method:     w.Method,
		Path:       w.Path,
		RawQuery:   w.RawQuery,
		Header:     nonNilHeader(w.Header),
		Body:       nilIfEmpty(w.Body),
		CallerCert: nilIfEmpty(w.CallerCert),
	}, nil
}

// EncodeForwardedResponse returns the deterministic CBOR encoding of resp
// (see doc.go), without the connection's header fields. It refuses a
// response that breaks a field rule (ErrBadForward) or a limit
// (ErrForwardTooLarge).
func EncodeForwardedResponse(resp *ForwardedResponse) ([]byte, error) {
	if resp == nil {
		return nil, fmt.Errorf("%w: nil response", ErrBadForward)
	}
	if resp.Status < 200 || resp.Status > 599 {
		return nil, fmt.Errorf("%w: status %d is not a final status (200 to 599)", ErrBadForward, resp.Status)
	}
	w := forwardResponseWire{
		Version: ForwardWireVersion,
		Status:  uint64(resp.Status),
		Header:  normalizeHeader(resp.Header, func(k string) bool { return !hopByHopHeaders[k] }),
		Body:    resp.Body,
	}
	return encodeStrict(&w)
}

// encodeStrict checks w's field rules and encodes it.
func encodeStrict[W interface{ check() error }](w W) ([]byte, error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	b, err := fwdEnc.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadForward, err)
	}
	return b, nil
}

// decodeStrict decodes b into w, checks w's field rules, and requires b to
// be w's one encoding.
func decodeStrict[W interface{ check() error }](b []byte, w W, what string) error {
	if err := decodeForward(b, w, what); err != nil {
		return err
	}
	if err := w.check(); err != nil {
		return err
	}
	return checkCanonical(b, w)
}

// DecodeForwardedResponse decodes b under the rules of
// DecodeForwardedRequest, for a response.
func DecodeForwardedResponse(b []byte) (*ForwardedResponse, error) {
	var w forwardResponseWire
	if err := decodeStrict(b, &w, "response"); err != nil {
		return nil, err
	}
	return &ForwardedResponse{Status: int(w.Status), Header: nonNilHeader(w.Header), Body: nilIfEmpty(w.Body)}, nil
}

// decodeForward checks the size and version of b and decodes it into w.
func decodeForward(b []byte, w any, what string) error {
	if len(b) > MaxForwardWireBytes {
		return fmt.Errorf("%w: %s of %d bytes, the limit is %d", ErrForwardTooLarge, what, len(b), MaxForwardWireBytes)
	}
	// The version is read before the strict decoding: a later version
	// will likely add keys, which the strict decoder reports as unknown
	// fields; "unsupported version" says what is actually wrong.
	if v, ok := peekVersion(b); ok && v != ForwardWireVersion {
		return fmt.Errorf("%w: forwarded %s version %d, this node speaks %d", ErrUnsupportedVersion, what, v, ForwardWireVersion)
	}
	if err := fwdDec.Unmarshal(b, w); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadForward, what, err)
	}
	return nil
}

// checkCanonical re-encodes what was decoded and compares: the simplest
// complete check that b is the one encoding of its value (it catches
// missing keys, unsorted keys and non-minimal heads, which the decoder
// tolerates). It costs one more copy of the body, transiently.
func checkCanonical(b []byte, w any) error {
	canon, err := fwdEnc.Marshal(w)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadForward, err)
	}
	if !bytes.Equal(canon, b) {
		return fmt.Errorf("%w: not in canonical form", ErrBadForward)
	}
	return nil
}

// peekVersion reads key 0 of the CBOR map b starts with, without decoding
// the rest: a definite-length map whose first key is the unsigned integer
// 0 and whose first value is an unsigned integer. Deterministic encoding
// sorts keys, so key 0 is first in every version.
func peekVersion(b []byte) (uint64, bool) {
	if len(b) == 0 || b[0]>>5 != 5 { // major type 5: map
		return 0, false
	}
	n := argLen(b[0] & 0x1f)
	if n < 0 || len(b) < 1+n+2 {
		return 0, false
	}
	b = b[1+n:]
	if b[0] != 0x00 { // key: unsigned 0
		return 0, false
	}
	b = b[1:]
	if b[0]>>5 != 0 { // value: unsigned integer
		return 0, false
	}
	info := b[0] & 0x1f
	n = argLen(info)
	if n < 0 || len(b) < 1+n {
		return 0, false
	}
	if n == 0 {
		return uint64(info), true
	}
	var v uint64
	for _, c := range b[1 : 1+n] {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// argLen is the number of argument bytes after a CBOR head whose
// additional information is info, or -1 for an indefinite or reserved one.
func argLen(info byte) int {
	switch {
	case info < 24:
		return 0
	case info <= 27:
		return 1 << (info - 24)
	}
	return -1
}

func (w *forwardRequestWire) check() error {
	switch {
	case !validToken(w.Method):
		return fmt.Errorf("%w: method %q is not a token", ErrBadForward, w.Method)
	case len(w.Path) == 0 || w.Path[0] != '/' || !validText(w.Path, false):
		return fmt.Errorf("%w: path %q does not start with / or holds a control character or invalid UTF-8", ErrBadForward, clip(w.Path))
	case !validText(w.RawQuery, false) || strings.IndexByte(w.RawQuery, '#') >= 0:
		return fmt.Errorf("%w: query %q holds '#', a control character or invalid UTF-8", ErrBadForward, clip(w.RawQuery))
	case len(w.Body) > MaxForwardBodyBytes:
		return fmt.Errorf("%w: request body of %d bytes, the limit is %d", ErrForwardTooLarge, len(w.Body), MaxForwardBodyBytes)
	}
	meta, err := checkHeader(w.Header, func(k string) error {
		if !forwardedRequestHeaders[k] {
			return fmt.Errorf("%w: request header %q is not forwarded", ErrBadForward, clip(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if meta += len(w.Method) + len(w.Path) + len(w.RawQuery) + len(w.CallerCert); meta > MaxForwardMetaBytes {
		return fmt.Errorf("%w: request of %d bytes besides the body, the limit is %d", ErrForwardTooLarge, meta, MaxForwardMetaBytes)
	}
	return nil
}

func (w *forwardResponseWire) check() error {
	switch {
	case w.Status < 200 || w.Status > 599:
		return fmt.Errorf("%w: status %d is not a final status (200 to 599)", ErrBadForward, w.Status)
	case len(w.Body) > MaxForwardBodyBytes:
		return fmt.Errorf("%w: response body of %d bytes, the limit is %d", ErrForwardTooLarge, len(w.Body), MaxForwardBodyBytes)
	}
	meta, err := checkHeader(w.Header, func(k string) error {
		if hopByHopHeaders[k] {
			return fmt.Errorf("%w: response header %q belongs to a connection", ErrBadForward, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if meta > MaxForwardMetaBytes {
		return fmt.Errorf("%w: response headers of %d bytes, the limit is %d", ErrForwardTooLarge, meta, MaxForwardMetaBytes)
	}
	return nil
}

// checkHeader checks a decoded or normalized header: canonical token
// names that allow accepts, non-empty value lists of valid values, at
// most MaxForwardHeaderFields values. It returns the bytes of names and
// values.
func checkHeader(h map[string][]string, allow func(string) error) (int, error) {
	size, fields := 0, 0
	for k, vs := range h {
		if !validToken(k) || http.CanonicalHeaderKey(k) != k {
			return 0, fmt.Errorf("%w: header name %q is not a canonical token", ErrBadForward, clip(k))
		}
		if err := allow(k); err != nil {
			return 0, err
		}
		if len(vs) == 0 {
			return 0, fmt.Errorf("%w: header %q has no value", ErrBadForward, k)
		}
		if fields += len(vs); fields > MaxForwardHeaderFields {
			return 0, fmt.Errorf("%w: over %d header values", ErrForwardTooLarge, MaxForwardHeaderFields)
		}
		size += len(k)
		for _, v := range vs {
			if !validText(v, true) {
				return 0, fmt.Errorf("%w: header %q value %q holds a control character or invalid UTF-8", ErrBadForward, k, clip(v))
			}
			size += len(v)
		}
	}
	return size, nil
}

// normalizeHeader returns the fields of h that keep accepts, under their
// canonical names: values of names that differ only in case are merged in
// the order of the sorted original names (deterministic whatever the map
// order), and names without values are left out. nil if nothing is left.
// Names that are not tokens are kept as they are, for check to refuse.
func normalizeHeader(h http.Header, keep func(string) bool) map[string][]string {
	var out map[string][]string
	for _, k := range slices.Sorted(maps.Keys(h)) {
		ck := http.CanonicalHeaderKey(k)
		if len(h[k]) == 0 || !keep(ck) {
			continue
		}
		if out == nil {
			out = make(map[string][]string)
		}
		out[ck] = append(out[ck], h[k]...)
	}
	return out
}

// validToken reports whether s is an RFC 9110 token: one or more tchar.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validText reports whether s is valid UTF-8 (CBOR text must be) without
// ASCII control characters (which could split or forge lines where the
// value is written out), tab allowed when tab is true.
func validText(s string, tab bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && !(tab && c == '\t')) || c == 0x7f {
			return false
		}
	}
	return true
}

// clip shortens s for an error message: a hostile peer's 64 KiB path
// should not land whole in a log line.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func nonNilHeader(h map[string][]string) http.Header {
	if h == nil {
		return http.Header{}
	}
	return http.Header(h)
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
