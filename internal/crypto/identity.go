package crypto

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"
)

// Sentinel errors of this package.
var (
	ErrBadPEM  = errors.New("crypto: bad PEM")
	ErrBadKey  = errors.New("crypto: unsupported or malformed key")
	ErrBadCert = errors.New("crypto: malformed certificate")
)

// GenerateKey returns a new ECDSA P-256 key read from rnd (crypto/rand if nil).
func GenerateKey(rnd io.Reader) (*ecdsa.PrivateKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	return ecdsa.GenerateKey(elliptic.P256(), rnd)
}

// CertOptions says what to put in a certificate.
type CertOptions struct {
	CommonName string
	// IsCA makes a certificate that may endorse others (the service identity).
	IsCA bool
	// NotBefore/Validity bound the certificate; zero values mean now-1h and 10 years.
	NotBefore time.Time
	Validity  time.Duration
	// DNSNames and IPs are subject alternative names for a TLS server.
	DNSNames []string
	IPs      []net.IP
	// Server/Client set the extended key usages.
	Server, Client bool
}

// SelfSign makes a self-signed certificate for key (members, users, service).
func SelfSign(rnd io.Reader, key crypto.Signer, opts CertOptions) (*x509.Certificate, error) {
	return issue(rnd, key.Public(), key, nil, opts)
}

// Endorse makes a certificate for pub signed by the issuer (the service
// identity endorsing a node).
func Endorse(rnd io.Reader, pub crypto.PublicKey, issuerKey crypto.Signer, issuer *x509.Certificate, opts CertOptions) (*x509.Certificate, error) {
	return issue(rnd, pub, issuerKey, issuer, opts)
}

func issue(rnd io.Reader, pub crypto.PublicKey, signer crypto.Signer, issuer *x509.Certificate, opts CertOptions) (*x509.Certificate, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("crypto: serial number: %w", err)
	}
	notBefore := opts.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	validity := opts.Validity
	if validity == 0 {
		validity = 10 * 365 * 24 * time.Hour
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	ski := sha256.Sum256(pubDER)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  opts.IsCA,
		SubjectKeyId:          ski[:20],
		DNSNames:              opts.DNSNames,
		IPAddresses:           opts.IPs,
	}
	if opts.IsCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.MaxPathLenZero = true
	}
	if opts.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if opts.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	parent := tmpl
	if issuer != nil {
		parent = issuer
	}
	der, err := x509.CreateCertificate(rnd, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("crypto: create certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// CertPEM encodes a certificate as PEM.
func CertPEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertPEM parses exactly one PEM certificate.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrBadPEM)
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: block type %q, want CERTIFICATE", ErrBadPEM, block.Type)
	}
	if len(trimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: trailing data after the certificate", ErrBadPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCert, err)
	}
	return cert, nil
}

// ParseKeyPEM parses a PKCS#8 or SEC 1 ECDSA private key.
func ParseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrBadPEM)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: block type %q, want PRIVATE KEY", ErrBadPEM, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T, want ECDSA", ErrBadKey, key)
	}
	return ec, nil
}

// PublicKeyID returns the lowercase hex SHA-256 of the DER public key: the
// form of a NodeID.
func PublicKeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	sum := sha256.Sum256(der)
	return fmt.Sprintf("%x", sum), nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
