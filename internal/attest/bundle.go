package attest

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/cocoledger/coco/internal/detcbor"
)

// Measurement is a platform-specific identity of the code running in a
// trusted execution environment: 32 bytes for virtual (the code id), the
// launch digest for SEV-SNP, MRTD for TDX. Policies compare it as lower-case
// hex (String).
type Measurement []byte

// String returns m as lower-case hex, the form allow-lists hold.
func (m Measurement) String() string { return hex.EncodeToString(m) }

// ParseMeasurement decodes a hex measurement (either case). It refuses the
// empty string.
func ParseMeasurement(s string) (Measurement, error) {
	if s == "" {
		return nil, fmt.Errorf("attest: empty measurement")
	}
	m, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("attest: measurement %q is not hex: %w", s, err)
	}
	return m, nil
}

// ReportData is the 64 bytes of caller-chosen data a platform binds into its
// evidence. Coco puts SHA-256 of the node's public key (PKIX DER) in the
// first 32 bytes and zeros in the rest (ReportDataForKey).
type ReportData [64]byte

// String returns rd as lower-case hex.
func (rd ReportData) String() string { return hex.EncodeToString(rd[:]) }

// ReportDataForKey returns the report data that binds evidence to pub:
// SHA-256(PKIX DER of pub) followed by 32 zero bytes. Errors wrap
// ErrPublicKey.
func ReportDataForKey(pub crypto.PublicKey) (ReportData, error) {
	var rd ReportData
	if pub == nil {
		return rd, fmt.Errorf("%w: nil key", ErrPublicKey)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return rd, fmt.Errorf("%w: %w", ErrPublicKey, err)
	}
	h := sha256.Sum256(der)
	copy(rd[:], h[:])
	return rd, nil
}

// BundleVersion is the value of key 0 in every bundle this package writes and
// the only one it reads.
const BundleVersion = 1

// Limits on a bundle. A bundle that exceeds any of them is malformed.
const (
	// MaxBundleSize bounds the encoded bundle. The largest expected bundle
	// (a TDX quote with its PCK chain and collateral) is a few tens of KiB.
	MaxBundleSize = 256 << 10
	// MaxEndorsements bounds the endorsements array.
	MaxEndorsements = 16
	// MaxPlatformNameLen bounds the platform name.
	MaxPlatformNameLen = 32
)

// Bundle is the versioned evidence bundle a node presents when it joins and
// serves at GET /node/quotes: which platform produced the evidence, the
// platform's evidence itself (a virtual evidence map, an SEV-SNP report, a
// TDX quote) and the endorsements needed to verify it (certificates, CRLs,
// collateral; each an opaque platform-specific byte string).
//
// On the wire it is the deterministic CBOR map
//
//	{0: 1 (version), 1: platform (tstr), 2: evidence (bstr), 3: [* endorsement (bstr)]}
//
// described in docs/attestation.md. A Bundle is a plain value: nothing in it
// is trusted until a Verifier has checked it and a Policy accepted the result.
type Bundle struct {
	Platform     string   // "virtual", …: [a-z0-9][a-z0-9-]*, at most MaxPlatformNameLen bytes
	Evidence     []byte   // non-empty
	Endorsements [][]byte // at most MaxEndorsements, each non-empty; nil and empty are the same
}

// bundleWire is the CBOR map; keys are small integers so the encoding is
// compact and the key order fixed by Core Deterministic Encoding.
type bundleWire struct {
	Version      uint64   `cbor:"0,keyasint"`
	Platform     string   `cbor:"1,keyasint"`
	Evidence     []byte   `cbor:"2,keyasint"`
	Endorsements [][]byte `cbor:"3,keyasint"`
}

var (
	detEnc = detcbor.EncMode(true) // nil endorsements encode as []
	// strictDec refuses what deterministic CBOR never contains; what it
	// tolerates beyond that (non-minimal lengths, unsorted or missing keys)
	// is caught by the re-encode comparison in each decoder.
	strictDec = detcbor.DecMode(detcbor.Limits{MaxNestedLevels: 4, MaxArrayElements: MaxEndorsements, MaxMapPairs: 16})
)

func validPlatformName(s string) bool {
	if s == "" || len(s) > MaxPlatformNameLen || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func (b *Bundle) validate() error {
	switch {
	case !validPlatformName(b.Platform):
		return fmt.Errorf("%w: platform name %q is not [a-z0-9][a-z0-9-]* of at most %d bytes", ErrBundle, b.Platform, MaxPlatformNameLen)
	case len(b.Evidence) == 0:
		return fmt.Errorf("%w: empty evidence", ErrBundle)
	case len(b.Endorsements) > MaxEndorsements:
		return fmt.Errorf("%w: %d endorsements, at most %d allowed", ErrBundle, len(b.Endorsements), MaxEndorsements)
	}
	for i, e := range b.Endorsements {
		if len(e) == 0 {
			return fmt.Errorf("%w: endorsement %d is empty", ErrBundle, i)
		}
	}
	return nil
}

// Marshal returns the deterministic CBOR encoding of b. It fails (ErrBundle)
// if b would not decode: a bad platform name, empty evidence, too many or
// empty endorsements, or an encoding over MaxBundleSize.
func (b *Bundle) Marshal() ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	out, err := detEnc.Marshal(bundleWire{
		Version:      BundleVersion,
		Platform:     b.Platform,
		Evidence:     b.Evidence,
		Endorsements: b.Endorsements,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	if len(out) > MaxBundleSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, at most %d allowed", ErrBundle, len(out), MaxBundleSize)
	}
	return out, nil
}

// UnmarshalBundle decodes data strictly: at most MaxBundleSize bytes, version
// BundleVersion, and exactly the encoding Marshal produces for the bundle it
// holds (so unknown, missing or duplicate keys, non-minimal integers or
// lengths, indefinite lengths, tags, invalid UTF-8 and trailing bytes are all
// rejected: each bundle has one encoding). The result does not alias data.
// Errors wrap ErrBundle, and also ErrBundleVersion for a version other than
// BundleVersion.
func UnmarshalBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrBundle, len(data), MaxBundleSize)
	}
	var w bundleWire
	if err := strictDec.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	if w.Version != BundleVersion {
		return nil, fmt.Errorf("%w: %w: %d (this build reads %d)", ErrBundle, ErrBundleVersion, w.Version, BundleVersion)
	}
	b := &Bundle{Platform: w.Platform, Evidence: w.Evidence}
	if len(w.Endorsements) > 0 {
		b.Endorsements = w.Endorsements
	}
	// Re-encoding is the simplest complete check of canonical form: it
	// rejects every encoding the decoder tolerates but Marshal would never
	// produce (missing or unsorted keys, non-minimal integers or lengths).
	canon, err := b.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, data) {
		return nil, fmt.Errorf("%w: not in deterministic encoding", ErrBundle)
	}
	return b, nil
}
