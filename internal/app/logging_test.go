package app

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
)

// run executes one endpoint against store and commits its writes.
func run(t testing.TB, store *kv.Store, method, path, query, body string) (*Context, error) {
	t.Helper()
	reg := NewRegistry(LoggingApp()...)
	ep, _, _ := reg.Lookup(method, path)
	if ep == nil {
		t.Fatalf("no endpoint %s %s", method, path)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	c := NewContext(store.Begin(), &Request{Method: method, Path: path, Query: q, Body: []byte(body)})
	if err := ep.Handler(c); err != nil {
		return c, err
	}
	if c.Tx.HasWrites() {
		if _, err := store.Commit(c.Tx, func(ids.Seqno, *kv.WriteSet) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return c, nil
}

func TestLogWriteReadAndClaims(t *testing.T) {
	store := kv.NewStore()
	c, err := run(t, store, "POST", "/app/log/private", "", `{"id": 5, "msg": "hi", "record_claim": true}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClaimsDigest() == ([32]byte{}) {
		t.Fatal("record_claim did not set a claims digest")
	}
	c, err = run(t, store, "POST", "/app/log/public", "", `{"id": 5, "msg": "pub"}`)
	if err != nil || c.ClaimsDigest() != ([32]byte{}) {
		t.Fatalf("public write: %v, claims %x", err, c.ClaimsDigest())
	}
	c, err = run(t, store, "GET", "/app/log/private", "id=5", "")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := c.Response(); status != 200 || body.(logMessage).Msg != "hi" {
		t.Fatalf("read = %d %v", status, body)
	}
	// The two scopes are separate tables.
	if _, ok := store.Begin().Get(PublicRecords, recordKey(5)); !ok {
		t.Fatal("public record missing")
	}
	if v, _ := store.Begin().Get(PrivateRecords, recordKey(5)); string(v) != "hi" {
		t.Fatalf("private record = %q", v)
	}
}

func TestLogRangePaginatesInIDOrder(t *testing.T) {
	store := kv.NewStore()
	// Insert out of order; ids straddle byte boundaries so that a wrong key
	// encoding would sort them wrongly.
	want := []uint64{0, 1, 255, 256, 65535, 65536, 1 << 40, 1<<64 - 1}
	for i := len(want) - 1; i >= 0; i-- {
		if _, err := run(t, store, "POST", "/app/log/public", "", fmt.Sprintf(`{"id": %d, "msg": "m%d"}`, want[i], want[i])); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	from := "0"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		c, err := run(t, store, "GET", "/app/log/public/range", "limit=3&from="+from, "")
		if err != nil {
			t.Fatal(err)
		}
		_, body := c.Response()
		page := body.(logPage)
		for _, e := range page.Entries {
			if e.Msg != fmt.Sprint("m", e.ID) {
				t.Fatalf("entry %d has msg %q", e.ID, e.Msg)
			}
			got = append(got, e.ID)
		}
		if page.Next == nil {
			break
		}
		from = fmt.Sprint(*page.Next)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("range = %v, want %v", got, want)
	}
	c, err := run(t, store, "GET", "/app/log/public/range", "from=256&to=65536", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, body := c.Response(); len(body.(logPage).Entries) != 2 {
		t.Fatalf("[256, 65536) = %v", body)
	}
	for _, q := range []string{"limit=0", "limit=1001", "from=5&to=4", "from=x", "limit=1&limit=2"} {
		if _, err := run(t, store, "GET", "/app/log/public/range", q, ""); !isInvalidInput(err) {
			t.Errorf("range?%s = %v, want InvalidInput", q, err)
		}
	}
}

func isInvalidInput(err error) bool {
	var aerr *Error
	return errors.As(err, &aerr) && aerr.Status == http.StatusBadRequest && aerr.Code == CodeInvalidInput
}

func TestLogWriteRejectsBadBodies(t *testing.T) {
	for body, wantIn := range map[string]string{
		``:                        "empty body",
		`{"id": 1}`:               `missing field "msg"`,
		`{"msg": "x"}`:            `missing field "id"`,
		`{"id": -1, "msg": "x"}`:  `"id" must be an unsigned 64-bit integer`,
		`{"id": 1.5, "msg": "x"}`: `"id" must be an unsigned 64-bit integer`,
		`{"id": 18446744073709551616, "msg": "x"}`: `"id" must be an unsigned 64-bit integer`,
		`{"id": 1, "msg": 7}`:                      `"msg" must be a string`,
		`{"id": 1, "msg": "x", "y": 1}`:            `unknown field "y"`,
		`{"id": 1, "msg": "x"}{}`:                  "trailing data",
		`{"id": 1, "msg": "x"`:                     "truncated",
		"{\"id\": 1, \"msg\": \"\xff\"}":           "UTF-8",
		`[1, 2]`:                                   "bad JSON body",
	} {
		_, err := run(t, kv.NewStore(), "POST", "/app/log/private", "", body)
		if !isInvalidInput(err) || !strings.Contains(err.Error(), wantIn) {
			t.Errorf("body %q: %v, want InvalidInput mentioning %q", body, err, wantIn)
		}
	}
}

// FuzzLogWrite: no body makes the handler panic, and every refusal is a
// 400 InvalidInput that stored nothing.
func FuzzLogWrite(f *testing.F) {
	for _, seed := range []string{`{"id":1,"msg":"x"}`, `{"id":1,"msg":"x","record_claim":true}`, `{}`, `null`, `{"id":1e3,"msg":""}`, "{\"msg\":\"\\ud800\"}", `{"id":1,"msg":"x"} x`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		store := kv.NewStore()
		_, err := run(t, store, "POST", "/app/log/private", "", body)
		if err != nil {
			if !isInvalidInput(err) {
				t.Fatalf("body %q: %v, want InvalidInput", body, err)
			}
			if store.Seqno() != 0 {
				t.Fatalf("refused body %q stored something", body)
			}
			return
		}
		if store.Seqno() != 1 {
			t.Fatalf("accepted body %q did not store exactly one transaction", body)
		}
	})
}

func TestRegistryLookup(t *testing.T) {
	reg := NewRegistry(LoggingApp()...)
	if ep, _, _ := reg.Lookup("POST", "/app/log/public"); ep == nil || ep.Mode != ReadWrite || ep.Auth != UserCert {
		t.Fatalf("POST /app/log/public = %+v", ep)
	}
	if ep, _, allowed := reg.Lookup("PUT", "/app/log/public"); ep != nil || len(allowed) != 2 {
		t.Fatalf("PUT: ep %v allowed %v", ep, allowed)
	}
	if ep, _, allowed := reg.Lookup("GET", "/nope"); ep != nil || allowed != nil {
		t.Fatal("unknown path found")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate endpoint accepted")
		}
	}()
	NewRegistry(append(LoggingApp(), LoggingApp()[0])...)
}

func TestRegistryTemplates(t *testing.T) {
	h := func(*Context) error { return nil }
	reg := NewRegistry(
		Endpoint{Method: "GET", Path: "/gov/proposals", Handler: h},
		Endpoint{Method: "GET", Path: "/gov/proposals/{id}", Handler: h},
		Endpoint{Method: "POST", Path: "/gov/proposals/{id}/ballots", Handler: h},
		Endpoint{Method: "GET", Path: "/gov/proposals/{id}/ballots/{member}", Handler: h},
		Endpoint{Method: "GET", Path: "/gov/proposals/latest", Handler: h},
	)
	cases := []struct {
		method, path, route string
		params              Params
		allowed             []string
	}{
		{"GET", "/gov/proposals", "/gov/proposals", nil, nil},
		{"GET", "/gov/proposals/ab12", "/gov/proposals/{id}", Params{"id": "ab12"}, nil},
		{"GET", "/gov/proposals/latest", "/gov/proposals/latest", nil, nil}, // exact wins
		{"POST", "/gov/proposals/ab12/ballots", "/gov/proposals/{id}/ballots", Params{"id": "ab12"}, nil},
		{"GET", "/gov/proposals/ab/ballots/m0", "/gov/proposals/{id}/ballots/{member}", Params{"id": "ab", "member": "m0"}, nil},
		{"PUT", "/gov/proposals/ab12", "/gov/proposals/{id}", nil, []string{"GET"}},
		{"GET", "/gov/proposals/", "", nil, nil},                                         // empty parameter
		{"GET", "/gov/proposals/ab12/", "", nil, nil},                                    // trailing segment
		{"GET", "/gov/proposals/ab12/votes", "", nil, nil},                               // other literal
		{"GET", "/gov/proposals/{id}", "/gov/proposals/{id}", Params{"id": "{id}"}, nil}, // a template is not a path
		{"GET", "/gov", "", nil, nil},
	}
	for _, c := range cases {
		ep, params, allowed := reg.Lookup(c.method, c.path)
		route, ok := reg.Route(c.path)
		if c.route == "" {
			if ep != nil || ok || allowed != nil {
				t.Errorf("%s %s: matched %v (route %q, allowed %v); want nothing", c.method, c.path, ep, route, allowed)
			}
			continue
		}
		if route != c.route || !ok {
			t.Errorf("%s %s: route %q, want %q", c.method, c.path, route, c.route)
		}
		if c.allowed != nil {
			if ep != nil || !slices.Equal(allowed, c.allowed) {
				t.Errorf("%s %s: ep %v allowed %v; want allowed %v", c.method, c.path, ep, allowed, c.allowed)
			}
			continue
		}
		if ep == nil || ep.Path != c.route || !maps.Equal(params, c.params) {
			t.Errorf("%s %s: ep %v params %v; want %s with %v", c.method, c.path, ep, params, c.route, c.params)
		}
	}
	for _, bad := range []string{"/a/{}", "/a/{x", "/a/x}", "/a/{x}/{x}", "/a/{{x}}"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("template %q accepted", bad)
				}
			}()
			NewRegistry(Endpoint{Method: "GET", Path: bad, Handler: h})
		}()
	}
}
