package receipt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/cocoledger/coco/internal/merkle"
)

// service is a test service identity: key and self-signed certificate.
type service struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// fixedKey derives a P-256 key from label, so that fuzz targets and
// benchmarks (which cannot use cryptotest.SetGlobalRandom) have stable keys.
func fixedKey(tb testing.TB, label string) *ecdsa.PrivateKey {
	tb.Helper()
	d := sha256.Sum256([]byte(label))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		tb.Fatalf("ParseRawPrivateKey: %v", err)
	}
	return k
}

func generateKey(tb testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		tb.Fatalf("GenerateKey: %v", err)
	}
	return k
}

func selfSigned(tb testing.TB, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "coco test service"},
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatalf("CreateCertificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("ParseCertificate: %v", err)
	}
	return cert
}

func newService(tb testing.TB, key *ecdsa.PrivateKey) *service {
	return &service{key: key, cert: selfSigned(tb, key)}
}

// testLeaf returns the distinct, deterministic leaf components of tx i
// (0-based); every third has a claims digest, the others all zeros.
func testLeaf(i int) LeafComponents {
	c := LeafComponents{
		WriteSetDigest: sha256.Sum256(fmt.Appendf(nil, "write set %d", i)),
		CommitEvidence: fmt.Sprintf("ce:1.%d:%064x", i+1, i),
	}
	if i%3 == 0 {
		c.ClaimsDigest = sha256.Sum256(fmt.Appendf(nil, "claim %d", i))
	}
	return c
}

// testLedger is a tree over testLeaf(0..n-1), as a node would keep it.
func testLedger(n int) *merkle.Tree {
	t := merkle.New()
	for i := range n {
		t.Append(testLeaf(i).LeafHash())
	}
	return t
}

// signedRoot signs the root of tree at size.
func signedRoot(tb testing.TB, svc *service, tree *merkle.Tree, size uint64) []byte {
	tb.Helper()
	root, err := tree.RootAt(size)
	if err != nil {
		tb.Fatalf("RootAt(%d): %v", size, err)
	}
	sr, err := SignRoot(rand.Reader, svc.key, root)
	if err != nil {
		tb.Fatalf("SignRoot: %v", err)
	}
	return sr
}

// makeReceipt returns the COSE receipt of leaf index under the root of size.
func makeReceipt(tb testing.TB, svc *service, tree *merkle.Tree, index, size uint64) []byte {
	tb.Helper()
	return attachFromTree(tb, signedRoot(tb, svc, tree, size), tree, index, size)
}

func attachFromTree(tb testing.TB, signed []byte, tree *merkle.Tree, index, size uint64) []byte {
	tb.Helper()
	path, err := tree.InclusionProof(index, size)
	if err != nil {
		tb.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
	}
	r, err := Attach(signed, size, index, path)
	if err != nil {
		tb.Fatalf("Attach(size %d, index %d): %v", size, index, err)
	}
	return r
}

var sentinels = []error{ErrMalformed, ErrUnsupported, ErrKeyMismatch, ErrProof, ErrSignature, ErrTxID}

// classified reports whether err matches exactly one sentinel.
func classified(err error) bool {
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1
}
