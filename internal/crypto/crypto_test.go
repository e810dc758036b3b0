package crypto

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
)

type seededReader struct{ r *rand.ChaCha8 }

func (s seededReader) Read(p []byte) (int, error) { return s.r.Read(p) }

func testRand(seed byte) seededReader {
	return seededReader{rand.NewChaCha8([32]byte{seed})}
}

func TestEndorsedNodeCertVerifiesAgainstServiceCert(t *testing.T) {
	svcKey, _ := GenerateKey(nil)
	svc, err := SelfSign(nil, svcKey, CertOptions{CommonName: "service", IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, _ := GenerateKey(nil)
	node, err := Endorse(nil, nodeKey.Public(), svcKey, svc, CertOptions{CommonName: "node0", Server: true, Client: true, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(svc)
	if _, err := node.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"}); err != nil {
		t.Fatalf("node cert does not verify under the service cert: %v", err)
	}
	otherKey, _ := GenerateKey(nil)
	other, _ := SelfSign(nil, otherKey, CertOptions{CommonName: "other", IsCA: true})
	foreign := x509.NewCertPool()
	foreign.AddCert(other)
	if _, err := node.Verify(x509.VerifyOptions{Roots: foreign}); err == nil {
		t.Fatal("node cert verified under a foreign service cert")
	}
}

func TestPEMRoundTrip(t *testing.T) {
	key, _ := GenerateKey(nil)
	cert, _ := SelfSign(nil, key, CertOptions{CommonName: "user0", Client: true})
	kp, err := KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseKeyPEM(kp)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Equal(key) {
		t.Fatal("key changed in PEM round trip")
	}
	c2, err := ParseCertPEM(CertPEM(cert))
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Equal(cert) {
		t.Fatal("cert changed in PEM round trip")
	}
	for _, bad := range [][]byte{nil, []byte("junk"), kp, append(CertPEM(cert), CertPEM(cert)...)} {
		if _, err := ParseCertPEM(bad); !errors.Is(err, ErrBadPEM) {
			t.Errorf("ParseCertPEM(%.20q) = %v, want ErrBadPEM", bad, err)
		}
	}
}

func TestSealOpen(t *testing.T) {
	s, err := NewLedgerSecret(testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("public part")
	ct, err := s.Seal(nil, 3, 17, []byte("private message"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("private")) {
		t.Fatal("ciphertext contains plaintext")
	}
	pt, err := s.Open(nil, 3, 17, ct, aad)
	if err != nil || string(pt) != "private message" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	// Every binding must matter: view, seqno, aad, ciphertext, key.
	other, _ := NewLedgerSecret(testRand(2))
	cases := map[string]func() error{
		"view":  func() error { _, err := s.Open(nil, 4, 17, ct, aad); return err },
		"seqno": func() error { _, err := s.Open(nil, 3, 18, ct, aad); return err },
		"aad":   func() error { _, err := s.Open(nil, 3, 17, ct, []byte("public parT")); return err },
		"key":   func() error { _, err := other.Open(nil, 3, 17, ct, aad); return err },
		"ct": func() error {
			bad := append([]byte(nil), ct...)
			bad[0] ^= 1
			_, err := s.Open(nil, 3, 17, bad, aad)
			return err
		},
	}
	for name, open := range cases {
		if err := open(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("changed %s: Open = %v, want ErrDecrypt", name, err)
		}
	}
	if _, err := s.Seal(nil, 1<<32, 1, nil, nil); !errors.Is(err, ErrViewRange) {
		t.Fatalf("view 2^32: %v, want ErrViewRange", err)
	}
}

func TestCommitEvidence(t *testing.T) {
	s, _ := NewLedgerSecret(testRand(1))
	id := ids.TxID{View: 2, Seqno: 41}
	ce := s.CommitEvidence(id)
	if ce != s.CommitEvidence(id) {
		t.Fatal("commit evidence not deterministic")
	}
	if ce == s.CommitEvidence(ids.TxID{View: 2, Seqno: 42}) || ce == s.CommitEvidence(ids.TxID{View: 3, Seqno: 41}) {
		t.Fatal("commit evidence does not depend on the TxID")
	}
	other, _ := NewLedgerSecret(testRand(2))
	if ce == other.CommitEvidence(id) {
		t.Fatal("commit evidence does not depend on the secret")
	}
	got, err := ParseCommitEvidence(ce)
	if err != nil || got != id {
		t.Fatalf("ParseCommitEvidence(%q) = %v, %v", ce, got, err)
	}
	if s.CommitEvidenceDigest(id) != sha256.Sum256([]byte(ce)) {
		t.Fatal("digest is not SHA-256 of the string")
	}
	for _, bad := range []string{"", "ce:", "ce:2.41:zz", "xx:2.41:" + ce[len(ce)-64:], "ce:0.41:" + ce[len(ce)-64:]} {
		if _, err := ParseCommitEvidence(bad); err == nil {
			t.Errorf("ParseCommitEvidence(%q) accepted", bad)
		}
	}
}

func FuzzParseCommitEvidence(f *testing.F) {
	s, _ := NewLedgerSecret(testRand(3))
	f.Add(s.CommitEvidence(ids.TxID{View: 1, Seqno: 1}))
	f.Add("ce:1.1:")
	f.Add("ce:" + strings.Repeat("9", 30))
	f.Fuzz(func(t *testing.T, ce string) {
		id, err := ParseCommitEvidence(ce)
		if err != nil {
			return
		}
		if !strings.HasPrefix(ce, "ce:"+id.String()+":") || len(ce) != len("ce:"+id.String()+":")+64 {
			t.Fatalf("accepted %q as %s", ce, id)
		}
	})
}
