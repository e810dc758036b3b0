package attest

import (
	"bytes"
	"errors"
	"fmt"
)

// Sentinel errors.
var (
	ErrUnknownPlatform = errors.New("attest: unknown platform")
	ErrSealedBlob      = errors.New("attest: sealed blob is not valid for this platform")
)

// Platform is the trusted execution environment a node runs in.
type Platform interface {
	// Name is the platform's configuration name ("virtual", …).
	Name() string
	// Secure reports whether sealing and evidence are hardware-backed.
	Secure() bool
	// Seal protects plaintext so that only this platform (and code
	// measurement) can recover it.
	Seal(plaintext []byte) ([]byte, error)
	// Unseal recovers what Seal protected.
	Unseal(blob []byte) ([]byte, error)
}

// New returns the platform named in the node configuration.
func New(name string) (Platform, error) {
	switch name {
	case "virtual", "":
		return Virtual{}, nil
	}
	return nil, fmt.Errorf("%w %q (supported: virtual)", ErrUnknownPlatform, name)
}

// Virtual is the insecure development platform.
type Virtual struct{}

var virtualMagic = []byte("COCO-VIRTUAL-SEALED-V1 (NOT CONFIDENTIAL)\n")

// Name implements Platform.
func (Virtual) Name() string { return "virtual" }

// Secure implements Platform: the virtual platform protects nothing.
func (Virtual) Secure() bool { return false }

// Seal implements Platform.
func (Virtual) Seal(plaintext []byte) ([]byte, error) {
	return append(append([]byte(nil), virtualMagic...), plaintext...), nil
}

// Unseal implements Platform.
func (Virtual) Unseal(blob []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(blob, virtualMagic)
	if !ok {
		return nil, fmt.Errorf("%w: missing the virtual platform header", ErrSealedBlob)
	}
	return append([]byte(nil), rest...), nil
}
