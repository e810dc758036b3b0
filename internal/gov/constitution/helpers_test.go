package constitution

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cocoledger/coco/internal/ids"
)

// memKV is an in-memory KV that logs its writes.
type memKV struct {
	tables map[string]map[string]string
	log    []string

	failWrites error                   // returned by Put and Delete when set
	onGet      func(table, key string) // called by Get, for tests that act mid-call
}

func newMemKV() *memKV { return &memKV{tables: map[string]map[string]string{}} }

func (m *memKV) Get(table, key string) (string, bool) {
	if m.onGet != nil {
		m.onGet(table, key)
	}
	v, ok := m.tables[table][key]
	return v, ok
}

func (m *memKV) Range(table string, fn func(key, value string) bool) {
	t := m.tables[table]
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !fn(k, t[k]) {
			return
		}
	}
}

func (m *memKV) Put(table, key, value string) error {
	if m.failWrites != nil {
		return m.failWrites
	}
	if m.tables[table] == nil {
		m.tables[table] = map[string]string{}
	}
	m.tables[table][key] = value
	m.log = append(m.log, fmt.Sprintf("put %s %s = %s", table, key, value))
	return nil
}

func (m *memKV) Delete(table, key string) error {
	if m.failWrites != nil {
		return m.failWrites
	}
	delete(m.tables[table], key)
	m.log = append(m.log, fmt.Sprintf("delete %s %s", table, key))
	return nil
}

// recHost records node actions.
type recHost struct {
	log  []string
	fail error
}

func (h *recHost) Action(name, argsJSON string) error {
	if h.fail != nil {
		return h.fail
	}
	h.log = append(h.log, fmt.Sprintf("host %s %s", name, argsJSON))
	return nil
}

// identity is a test member or user: a deterministic Ed25519 certificate
// (Ed25519 signatures need no randomness), so that ids are stable.
type identity struct {
	name, certPEM, id string
}

var identities sync.Map // name -> identity

func testIdentity(t testing.TB, name string) identity {
	if v, ok := identities.Load(name); ok {
		return v.(identity)
	}
	seed := sha256.Sum256([]byte("coco test identity " + name))
	key := ed25519.NewKeyFromSeed(seed[:])
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	id := identity{
		name:    name,
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		id:      ids.Fingerprint(der),
	}
	identities.Store(name, id)
	return id
}

// x25519PEM returns a deterministic X25519 public key in PEM.
func x25519PEM(t testing.TB) string {
	seed := sha256.Sum256([]byte("coco test x25519"))
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return pkixPEM(t, k.PublicKey())
}

// ed25519PEM returns a deterministic Ed25519 public key in PEM.
func ed25519PEM(t testing.TB) string {
	seed := sha256.Sum256([]byte("coco test ed25519"))
	return pkixPEM(t, ed25519.NewKeyFromSeed(seed[:]).Public())
}

func mustDER(t testing.TB, certPEM string) []byte {
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil {
		t.Fatal("not PEM")
	}
	return b.Bytes
}

func pkixPEM(t testing.TB, pub any) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// jsonString quotes s as a JSON string, as JSON.stringify does for the
// ASCII text of PEM.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// defaultConstitution compiles the default constitution once per test
// binary.
var defaultConstitution = sync.OnceValues(func() (*Constitution, error) {
	return Compile(DefaultSource(), Limits{})
})

func mustDefault(t testing.TB) *Constitution {
	t.Helper()
	c, err := defaultConstitution()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// module builds a constitution source whose exports are trivial except for
// the ones given.
func module(exports map[string]string) string {
	src := map[string]string{
		"validate": "export function validate(input) { return {valid: true, description: \"\"}; }",
		"resolve":  "export function resolve(proposal, proposer, votes) { return \"Open\"; }",
		"apply":    "export function apply(proposal, id) {}",
	}
	for k, v := range exports {
		src[k] = v
	}
	return src["validate"] + "\n" + src["resolve"] + "\n" + src["apply"] + "\n"
}

func mustCompile(t testing.TB, src string, lim Limits) *Constitution {
	t.Helper()
	c, err := Compile(src, lim)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}
