package attest

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of them (or is
// a *RefusedError, which matches ErrRefused).
var (
	// ErrUnknownPlatform: a platform name no constructor or verifier here
	// knows. Returned as *UnknownPlatformError.
	ErrUnknownPlatform = errors.New("attest: unknown platform")
	// ErrSealedBlob: Unseal was given something this platform did not seal.
	ErrSealedBlob = errors.New("attest: sealed blob is not valid for this platform")
	// ErrCodeID: a configured virtual code id is not 64 hex digits, or was
	// given for a platform whose measurement the hardware takes.
	ErrCodeID = errors.New("attest: invalid code id")
	// ErrExecutable: the running executable could not be hashed for the
	// default virtual code id.
	ErrExecutable = errors.New("attest: cannot hash the running executable")
	// ErrBundle: an evidence bundle is malformed (see UnmarshalBundle).
	ErrBundle = errors.New("attest: malformed evidence bundle")
	// ErrBundleVersion: an evidence bundle of a version this build does not
	// read. Always wrapped together with ErrBundle.
	ErrBundleVersion = errors.New("attest: unsupported evidence bundle version")
	// ErrEvidence: evidence is well framed but does not verify for its
	// platform (bad structure, signature, chain, TCB, freshness, …).
	ErrEvidence = errors.New("attest: evidence does not verify")
	// ErrPublicKey: ReportDataForKey was given a key it cannot encode.
	ErrPublicKey = errors.New("attest: unsupported public key")
	// ErrRefused: Policy refused verified evidence. Returned as *RefusedError.
	ErrRefused = errors.New("attest: refused by policy")
)

// UnknownPlatformError names a platform that is not supported: by New, by
// NewVerifier, or (at Verify time) by the registry a bundle was given to.
type UnknownPlatformError struct {
	Platform  string   // the name asked for, as given
	Supported []string // the names that would have been accepted
}

func (e *UnknownPlatformError) Error() string {
	return fmt.Sprintf("attest: unknown platform %q (supported: %v)", e.Platform, e.Supported)
}

// Is makes errors.Is(err, ErrUnknownPlatform) hold.
func (e *UnknownPlatformError) Is(target error) bool { return target == ErrUnknownPlatform }

// PlatformVirtual is the name of the insecure development platform.
const PlatformVirtual = "virtual"

// Platform is the trusted execution environment a node runs in.
type Platform interface {
	// Name is the platform's configuration name ("virtual", …); it is also
	// the Platform field of the bundles Evidence returns.
	Name() string
	// Secure reports whether sealing and evidence are hardware-backed.
	Secure() bool
	// Seal protects plaintext so that only this platform (and code
	// measurement) can recover it.
	Seal(plaintext []byte) ([]byte, error)
	// Unseal recovers what Seal protected.
	Unseal(blob []byte) ([]byte, error)
	// Evidence returns attestation evidence from this platform binding rd
	// (Coco passes ReportDataForKey of the node's public key). The bundle
	// verifies under NewVerifier(Name()).
	Evidence(rd ReportData) (*Bundle, error)
}

// Option configures New.
type Option func(*options)

type options struct {
	virtualCodeID string
}

// WithVirtualCodeID sets the code id of the virtual platform: 64 hex digits
// (32 bytes, either case), which become its measurement verbatim. Empty means
// the default, SHA-256 of the running executable. Setting it for any other
// platform is an error (ErrCodeID): real hardware measures the code itself.
func WithVirtualCodeID(codeID string) Option {
	return func(o *options) { o.virtualCodeID = codeID }
}

// New returns the platform named in the node configuration ("" means
// "virtual").
func New(name string, opts ...Option) (Platform, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	switch name {
	case PlatformVirtual, "":
		return NewVirtual(o.virtualCodeID)
	case PlatformSEVSNP:
		if o.virtualCodeID != "" {
			return nil, fmt.Errorf("%w: sev-snp measures the code itself; remove attestation.virtual_code_id", ErrCodeID)
		}
		p, err := NewSNP()
		if err != nil { // not return NewSNP(): a nil *SNP would be a non-nil Platform
			return nil, err
		}
		return p, nil
	case PlatformTDX:
		if o.virtualCodeID != "" {
			return nil, fmt.Errorf("%w: tdx measures the code itself; remove attestation.virtual_code_id", ErrCodeID)
		}
		p, err := NewTDX()
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	// Hardware platforms, when added here, refuse a virtual code id
	// (ErrCodeID): their measurement is taken by the hardware.
	return nil, &UnknownPlatformError{Platform: name, Supported: supportedPlatforms()}
}
