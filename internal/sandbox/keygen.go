package sandbox

import (
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
