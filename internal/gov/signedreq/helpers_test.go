package signedreq

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/veraison/go-cose"

	"github.com/cocoledger/coco/internal/ids"
)

var (
	testNow     = time.Unix(1_800_000_000, 0).UTC()
	testService = sha256.Sum256([]byte("service certificate DER"))
	testWindow  = 5 * time.Minute
)

const testProposal = "5e1f0c9a3b7d2e4f6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f"

var allKinds = []Kind{KindProposal, KindBallot, KindWithdrawal, KindAck}

// member is a consortium member: a key and its self-signed certificate.
type member struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	id   ids.MemberID
}

func newMember(t testing.TB, curve elliptic.Curve) member {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return member{key: key, cert: certFor(t, key)}.withID()
}

// certFor makes a self-signed certificate for key; every call gives another
// certificate, hence another member id, for the same key.
func certFor(t testing.TB, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "member"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (m member) withID() member {
	m.id = ids.MemberID(ids.Fingerprint(m.cert.Raw))
	return m
}

// lookup knows exactly this member.
func (m member) lookup(id ids.MemberID) (*x509.Certificate, bool) {
	return m.cert, id == m.id
}

// request returns a typical request of kind k, created at testNow.
func request(k Kind) Request {
	r := Request{Kind: k, CreatedAt: testNow, ServiceDigest: testService}
	switch k {
	case KindProposal:
		r.Payload = []byte(`{"actions":[{"name":"set_member","args":{}}]}`)
	case KindBallot:
		r.ProposalID, r.Payload = testProposal, []byte(`{"vote": true}`)
	case KindWithdrawal:
		r.ProposalID = testProposal
	case KindAck:
		r.Payload = []byte(`{"state_digest":"00ff"}`)
	}
	return r
}

func (m member) sign(t testing.TB, r Request) []byte {
	t.Helper()
	raw, err := Sign(rand.Reader, m.key, m.cert, r)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// signHeader signs an arbitrary protected header and payload with m's key,
// in the package's own envelope: the way to make requests that are well
// signed but break the format.
func (m member) signHeader(t testing.TB, header map[any]any, payload []byte) []byte {
	t.Helper()
	protected, err := encMode.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return m.signProtected(t, protected, payload)
}

func (m member) signProtected(t testing.TB, protected, payload []byte) []byte {
	t.Helper()
	alg, err := algorithmFor(m.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := cose.NewSigner(alg, m.key)
	if err != nil {
		t.Fatal(err)
	}
	tbs, err := toBeSigned(protected, payload)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(rand.Reader, tbs)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := encodeEnvelope(protected, payload, sig)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// header returns the protected header Sign makes for r signed by m.
func (m member) header(r Request) map[any]any {
	alg, _ := algorithmFor(m.key.Public())
	h := map[any]any{
		cose.HeaderLabelAlgorithm: int64(alg),
		cose.HeaderLabelKeyID:     []byte(m.id),
		HeaderLabelType:           string(r.Kind),
		HeaderLabelCreatedAt:      uint64(r.CreatedAt.Unix()),
		HeaderLabelService:        r.ServiceDigest[:],
	}
	if r.ProposalID != "" {
		h[HeaderLabelProposalID] = r.ProposalID
	}
	return h
}

func newChecker() *Checker {
	return &Checker{ServiceDigest: testService, Window: testWindow}
}

var sentinels = []error{ErrMalformed, ErrWrongKind, ErrWrongService, ErrWrongProposal, ErrStale, ErrReplayed, ErrUnknownMember, ErrBadSignature}

// wantOnly fails unless err matches want and no other sentinel.
func wantOnly(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("error %v also matches %v", err, s)
		}
	}
}

// malleate returns raw with its ECDSA signature (r, s) replaced by
// (r, n−s), which verifies just as well.
func malleate(t testing.TB, raw []byte, curve elliptic.Curve) []byte {
	t.Helper()
	n := curve.Params().N
	size := (n.BitLen() + 7) / 8
	out := bytes.Clone(raw)
	sField := out[len(out)-size:] // the signature is the last element
	s := new(big.Int).SetBytes(sField)
	s.Sub(n, s).FillBytes(sField)
	return out
}

func sameFields(a, b *Request) bool {
	return a.Kind == b.Kind && a.MemberID == b.MemberID && a.CreatedAt.Equal(b.CreatedAt) &&
		a.ServiceDigest == b.ServiceDigest && a.ProposalID == b.ProposalID && bytes.Equal(a.Payload, b.Payload)
}
