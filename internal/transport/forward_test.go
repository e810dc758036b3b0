package transport

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func sampleRequest() *ForwardedRequest {
	return &ForwardedRequest{
		Method:   http.MethodPost,
		Path:     "/app/log/private",
		RawQuery: "id=42&x=%20y",
		Header: http.Header{
			"Content-Type":  {"application/json"},
			"Accept":        {"application/json", "text/plain;q=0.5"},
			"Authorization": {"Bearer secret"}, // not forwarded
		},
		Body:       []byte{0, 1, 2, 0xff, '{', '}'},
		CallerCert: []byte{0x30, 0x82, 0x01, 0x0a, 0xde, 0xad},
	}
}

func sampleResponse() *ForwardedResponse {
	return &ForwardedResponse{
		Status: http.StatusCreated,
		Header: http.Header{
			"X-Coco-Txid":       {"2.17"},
			"Content-Type":      {"application/json"},
			"Content-Length":    {"3"}, // implied by the body: not relayed
			"Connection":        {"close"},
			"X-Multi":           {"a", "b"},
			"Transfer-Encoding": {"chunked"},
		},
		Body: []byte(`{}` + "\n"),
	}
}

// raw encodes v with the forward encoder, for hand-made wire inputs.
func raw(t testing.TB, v any) []byte {
	t.Helper()
	b, err := fwdEnc.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestForwardedRequestRoundTrip(t *testing.T) {
	req := sampleRequest()
	b, err := EncodeForwardedRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeForwardedRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	want := *req
	want.Header = http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json", "text/plain;q=0.5"}}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("decoded %+v\nwant    %+v", got, &want)
	}
	// Deterministic: the same request, however its header map was built,
	// has one encoding; names are made canonical, others dropped.
	again := sampleRequest()
	again.Header = http.Header{"accept": {"application/json", "text/plain;q=0.5"}, "X-Other": {"1"}, "content-type": {"application/json"}}
	b2, err := EncodeForwardedRequest(again)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("encodings differ (%v):\n%x\n%x", err, b, b2)
	}
	// The decoded request does not alias the input.
	clear(b)
	if got.Body[3] != 0xff || got.CallerCert[0] != 0x30 || got.Path != "/app/log/private" {
		t.Fatal("decoded request aliases the wire bytes")
	}
	// Empty parts decode to nil slices and an empty, usable header.
	b, err = EncodeForwardedRequest(&ForwardedRequest{Method: "DELETE", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = DecodeForwardedRequest(b)
	if err != nil || got.Body != nil || got.CallerCert != nil || got.Header == nil || len(got.Header) != 0 {
		t.Fatalf("empty request: %+v, %v", got, err)
	}
}

func TestForwardedResponseRoundTrip(t *testing.T) {
	b, err := EncodeForwardedResponse(sampleResponse())
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeForwardedResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &ForwardedResponse{
		Status: http.StatusCreated,
		Header: http.Header{"X-Coco-Txid": {"2.17"}, "Content-Type": {"application/json"}, "X-Multi": {"a", "b"}},
		Body:   []byte("{}\n"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v\nwant    %+v", got, want)
	}
	// Names differing in case are merged, in a fixed order.
	b, err = EncodeForwardedResponse(&ForwardedResponse{Status: 500, Header: http.Header{"x-a": {"2"}, "X-A": {"1"}, "X-Empty": {}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err = DecodeForwardedResponse(b); err != nil || !reflect.DeepEqual(got.Header, http.Header{"X-A": {"1", "2"}}) {
		t.Fatalf("merged header: %v, %v", got.Header, err)
	}
}

func TestEncodeForwardRefuses(t *testing.T) {
	many := http.Header{}
	for i := range MaxForwardHeaderFields + 1 {
		many.Add("X-H", string(rune('a'+i%26)))
	}
	for name, c := range map[string]struct {
		mod  func(*ForwardedRequest)
		want error
	}{
		"nil":                {nil, ErrBadForward},
		"no method":          {func(r *ForwardedRequest) { r.Method = "" }, ErrBadForward},
		"method with space":  {func(r *ForwardedRequest) { r.Method = "PO ST" }, ErrBadForward},
		"relative path":      {func(r *ForwardedRequest) { r.Path = "app" }, ErrBadForward},
		"path with newline":  {func(r *ForwardedRequest) { r.Path = "/a\nb" }, ErrBadForward},
		"path not utf-8":     {func(r *ForwardedRequest) { r.Path = "/\xff" }, ErrBadForward},
		"query with #":       {func(r *ForwardedRequest) { r.RawQuery = "a#b" }, ErrBadForward},
		"query with NUL":     {func(r *ForwardedRequest) { r.RawQuery = "a\x00" }, ErrBadForward},
		"header CRLF":        {func(r *ForwardedRequest) { r.Header = http.Header{"Accept": {"a\r\nX-Evil: 1"}} }, ErrBadForward},
		"caller cert huge":   {func(r *ForwardedRequest) { r.CallerCert = make([]byte, MaxForwardMetaBytes) }, ErrForwardTooLarge},
		"body over limit":    {func(r *ForwardedRequest) { r.Body = make([]byte, MaxForwardBodyBytes+1) }, ErrForwardTooLarge},
		"path over the meta": {func(r *ForwardedRequest) { r.Path = "/" + strings.Repeat("a", MaxForwardMetaBytes) }, ErrForwardTooLarge},
	} {
		var req *ForwardedRequest
		if c.mod != nil {
			req = sampleRequest()
			c.mod(req)
		}
		if _, err := EncodeForwardedRequest(req); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	for name, c := range map[string]struct {
		resp *ForwardedResponse
		want error
	}{
		"nil":             {nil, ErrBadForward},
		"status 0":        {&ForwardedResponse{}, ErrBadForward},
		"status 101":      {&ForwardedResponse{Status: 101}, ErrBadForward},
		"status 600":      {&ForwardedResponse{Status: 600}, ErrBadForward},
		"bad header name": {&ForwardedResponse{Status: 200, Header: http.Header{"X A": {"1"}}}, ErrBadForward},
		"header newline":  {&ForwardedResponse{Status: 200, Header: http.Header{"X-A": {"1\n"}}}, ErrBadForward},
		"too many values": {&ForwardedResponse{Status: 200, Header: many}, ErrForwardTooLarge},
		"body over limit": {&ForwardedResponse{Status: 200, Body: make([]byte, MaxForwardBodyBytes+1)}, ErrForwardTooLarge},
	} {
		if _, err := EncodeForwardedResponse(c.resp); !errors.Is(err, c.want) {
			t.Errorf("response %s: %v, want %v", name, err, c.want)
		}
	}
	// A tab is a valid header value character.
	if _, err := EncodeForwardedResponse(&ForwardedResponse{Status: 200, Header: http.Header{"X-A": {"a\tb"}}}); err != nil {
		t.Errorf("tab refused: %v", err)
	}
}

func TestDecodeForwardRefuses(t *testing.T) {
	valid, err := EncodeForwardedRequest(sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	type wire = forwardRequestWire
	good := func(mod func(*wire)) []byte {
		w := wire{Version: 1, Method: "POST", Path: "/a", Header: map[string][]string{}}
		if mod != nil {
			mod(&w)
		}
		return raw(t, &w)
	}
	if _, err := DecodeForwardedRequest(good(nil)); err != nil {
		t.Fatalf("the baseline does not decode: %v", err)
	}
	// The same map with one key more, or one less.
	withKey7 := raw(t, map[int]any{0: 1, 1: "POST", 2: "/a", 3: "", 4: map[string][]string{}, 5: []byte{}, 6: []byte{}, 7: 0})
	without6 := raw(t, map[int]any{0: 1, 1: "POST", 2: "/a", 3: "", 4: map[string][]string{}, 5: []byte{}})
	// A non-minimal head: the version as a one-byte argument (0x18 0x01).
	nonMinimal := append([]byte{valid[0], 0x00, 0x18, 0x01}, valid[3:]...)
	// Key 1 twice.
	dup := append([]byte{0xa8}, valid[1:]...)
	dup = append(dup, 0x01, 0x63, 'G', 'E', 'T')
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":                {nil, ErrBadForward},
		"not a map":            {[]byte{0x01}, ErrBadForward},
		"truncated":            {valid[:len(valid)-1], ErrBadForward},
		"trailing byte":        {append(bytes.Clone(valid), 0), ErrBadForward},
		"version 2":            {good(func(w *wire) { w.Version = 2 }), ErrUnsupportedVersion},
		"version 2, new key":   {raw(t, map[int]any{0: 2, 1: "POST", 9: "new"}), ErrUnsupportedVersion},
		"version 0":            {good(func(w *wire) { w.Version = 0 }), ErrUnsupportedVersion},
		"unknown key":          {withKey7, ErrBadForward},
		"missing key":          {without6, ErrBadForward},
		"duplicate key":        {dup, ErrBadForward},
		"non-minimal head":     {nonMinimal, ErrBadForward},
		"indefinite map":       {append([]byte{0xbf}, append(valid[1:], 0xff)...), ErrBadForward},
		"tag":                  {append([]byte{0xc1}, valid...), ErrBadForward},
		"header not forwarded": {good(func(w *wire) { w.Header = map[string][]string{"Authorization": {"x"}} }), ErrBadForward},
		"header lower case":    {good(func(w *wire) { w.Header = map[string][]string{"accept": {"x"}} }), ErrBadForward},
		"header no values":     {good(func(w *wire) { w.Header = map[string][]string{"Accept": {}} }), ErrBadForward},
		"header CRLF":          {good(func(w *wire) { w.Header = map[string][]string{"Accept": {"a\r\nb"}} }), ErrBadForward},
		"bad method":           {good(func(w *wire) { w.Method = "G(T" }), ErrBadForward},
		"meta too large":       {good(func(w *wire) { w.CallerCert = make([]byte, MaxForwardMetaBytes) }), ErrForwardTooLarge},
		"over the wire limit":  {make([]byte, MaxForwardWireBytes+1), ErrForwardTooLarge},
		"invalid utf-8":        {raw(t, map[int]any{0: 1, 1: "POST", 2: "/\xff", 3: "", 4: map[string][]string{}, 5: []byte{}, 6: []byte{}}), ErrBadForward},
		"a response":           {mustEncodeResponse(t, sampleResponse()), ErrBadForward},
	} {
		if r, err := DecodeForwardedRequest(c.b); !errors.Is(err, c.want) || r != nil {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	type rwire = forwardResponseWire
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"status 99":     {raw(t, &rwire{Version: 1, Status: 99, Header: map[string][]string{}}), ErrBadForward},
		"status huge":   {raw(t, &rwire{Version: 1, Status: 1 << 40, Header: map[string][]string{}}), ErrBadForward},
		"hop-by-hop":    {raw(t, &rwire{Version: 1, Status: 200, Header: map[string][]string{"Connection": {"close"}}}), ErrBadForward},
		"version 2":     {raw(t, &rwire{Version: 2, Status: 200, Header: map[string][]string{}}), ErrUnsupportedVersion},
		"a request":     {valid, ErrBadForward},
		"too many keys": {raw(t, &rwire{Version: 1, Status: 200, Header: manyHeaderNames(MaxForwardHeaderFields + 1)}), ErrBadForward},
	} {
		if r, err := DecodeForwardedResponse(c.b); !errors.Is(err, c.want) || r != nil {
			t.Errorf("response %s: %v, want %v", name, err, c.want)
		}
	}
}

func mustEncodeResponse(t testing.TB, r *ForwardedResponse) []byte {
	t.Helper()
	b, err := EncodeForwardedResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func manyHeaderNames(n int) map[string][]string {
	h := make(map[string][]string, n)
	for i := range n {
		h["X-"+strings.Repeat("A", i+1)] = []string{"1"}
	}
	return h
}

func TestPeekVersion(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		v    uint64
		isOK bool
	}{
		{[]byte{0xa7, 0x00, 0x01}, 1, true},
		{[]byte{0xa7, 0x00, 0x18, 0x20}, 32, true},
		{[]byte{0xb8, 0x07, 0x00, 0x19, 0x01, 0x00}, 256, true},
		{[]byte{0xa7, 0x00, 0x1b, 0, 0, 0, 0, 0, 0, 0, 9}, 9, true},
		{[]byte{0xa7, 0x00, 0x1b, 0, 0}, 0, false}, // truncated argument
		{[]byte{0xa7, 0x01, 0x01}, 0, false},       // first key is not 0
		{[]byte{0xa7, 0x00, 0x41, 0x01}, 0, false}, // version is not an integer
		{[]byte{0xbf, 0x00, 0x01}, 0, false},       // indefinite map
		{[]byte{0xa7}, 0, false},
		{nil, 0, false},
	} {
		if v, ok := peekVersion(c.b); v != c.v || ok != c.isOK {
			t.Errorf("% x: %d %v, want %d %v", c.b, v, ok, c.v, c.isOK)
		}
	}
}

func TestByteBudget(t *testing.T) {
	b := newByteBudget(10)
	if !b.tryAcquire(6) || !b.tryAcquire(4) {
		t.Fatal("10 bytes of 10 refused")
	}
	if b.tryAcquire(1) {
		t.Fatal("a byte granted past the budget")
	}
	b.release(6)
	if b.tryAcquire(7) || !b.tryAcquire(6) {
		t.Fatal("the bytes released are not what is free")
	}
	b.release(6)
	b.release(4)
	if free := b.free.Load(); free != 10 {
		t.Fatalf("%d bytes free after every release, want 10", free)
	}
}

// FuzzDecodeForwardedRequest checks the decoder on arbitrary input: it
// never panics or over-allocates, and whatever it accepts is the one
// encoding of what it returns (re-encoding gives the input back).
func FuzzDecodeForwardedRequest(f *testing.F) {
	valid, err := EncodeForwardedRequest(sampleRequest())
	if err != nil {
		f.Fatal(err)
	}
	empty, _ := EncodeForwardedRequest(&ForwardedRequest{Method: "GET", Path: "/"})
	f.Add(valid)
	f.Add(empty)
	f.Add(valid[:len(valid)-2])
	f.Add(append(bytes.Clone(valid), 0))
	f.Add(raw(f, map[int]any{0: 2, 1: "POST"}))
	f.Add(raw(f, map[int]any{0: 1, 1: "POST", 2: "/a", 3: "", 4: map[string][]string{"Accept": {}}, 5: []byte{}, 6: []byte{}}))
	f.Add(mustEncodeResponse(f, sampleResponse()))
	f.Add([]byte{0xa7, 0x00, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xa7, 0x05, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // a huge byte string
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeForwardedRequest(b)
		if err != nil {
			if req != nil {
				t.Fatal("a request with an error")
			}
			return
		}
		again, err := EncodeForwardedRequest(req)
		if err != nil {
			t.Fatalf("re-encoding what was accepted: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted a second encoding:\n%x\nre-encodes to\n%x", b, again)
		}
	})
}

// FuzzDecodeForwardedResponse is FuzzDecodeForwardedRequest for answers.
func FuzzDecodeForwardedResponse(f *testing.F) {
	valid := mustEncodeResponse(f, sampleResponse())
	f.Add(valid)
	f.Add(mustEncodeResponse(f, &ForwardedResponse{Status: 204}))
	f.Add(valid[:len(valid)-1])
	f.Add(raw(f, &forwardResponseWire{Version: 1, Status: 700, Header: map[string][]string{}}))
	f.Add(raw(f, &forwardResponseWire{Version: 1, Status: 200, Header: map[string][]string{"Te": {"x"}}}))
	f.Add(raw(f, map[int]any{0: 3}))
	f.Add([]byte{0xa4, 0x03, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := DecodeForwardedResponse(b)
		if err != nil {
			if resp != nil {
				t.Fatal("a response with an error")
			}
			return
		}
		again, err := EncodeForwardedResponse(resp)
		if err != nil {
			t.Fatalf("re-encoding what was accepted: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted a second encoding:\n%x\nre-encodes to\n%x", b, again)
		}
	})
}
