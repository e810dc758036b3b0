package sandbox

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/cocoledger/coco/internal/crypto"
)

// ErrBadName reports an identity name that cannot be a file name prefix.
var ErrBadName = errors.New("sandbox: identity name must be 1-64 letters, digits, '-' or '_'")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Keygen writes DIR/NAME_cert.pem (self-signed, client auth) and
// DIR/NAME_privk.pem (PKCS#8, mode 0600). It refuses to overwrite.
func Keygen(dir, name string) (certPath, keyPath string, err error) {
	if !nameRE.MatchString(name) {
		return "", "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	certPath = filepath.Join(dir, name+"_cert.pem")
	keyPath = filepath.Join(dir, name+"_privk.pem")
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("sandbox: %s already exists; not overwriting a key", p)
		}
	}
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		return "", "", err
	}
	cert, err := crypto.SelfSign(nil, key, crypto.CertOptions{CommonName: name, Client: true})
	if err != nil {
		return "", "", err
	}
	keyPEM, err := crypto.KeyPEM(key)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certPath, crypto.CertPEM(cert), 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// KeygenEncryption writes a member's encryption key pair, to which
// recovery shares are sealed (HPKE, X25519): DIR/NAME_enc_pubk.pem (PKIX)
// and DIR/NAME_enc_privk.pem (PKCS#8, mode 0600). It refuses to
// overwrite.
func KeygenEncryption(dir, name string) (pubPath, privPath string, err error) {
	if !nameRE.MatchString(name) {
		return "", "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	pubPath = filepath.Join(dir, name+"_enc_pubk.pem")
	privPath = filepath.Join(dir, name+"_enc_privk.pem")
	for _, p := range []string{pubPath, privPath} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("sandbox: %s already exists; not overwriting a key", p)
		}
	}
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.PublicKey())
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return "", "", err
	}
	return pubPath, privPath, nil
}
