package attest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Verified is what a Verifier established from a bundle. It says what the
// evidence claims and, for a secure platform, that the hardware vouches for
// it; whether that is acceptable is Policy's decision.
type Verified struct {
	Platform    string      // the bundle's platform
	Measurement Measurement // code identity (does not alias the bundle)
	ReportData  ReportData  // what the evidence binds
	// Secure reports whether the claims are backed by hardware (a signature
	// chain to the vendor's root). False for virtual: nothing is proven.
	Secure bool
	// TCB is the platform's trusted computing base version in a
	// platform-specific text form; empty for virtual.
	TCB string
	// TCBVersion is the TCB in a form policies compare: SEV-SNP, the
	// reported TCB_VERSION as a uint64 (the SPL bytes, bootloader lowest);
	// TDX, the TEE TCB SVN as 16 bytes, compared byte by byte. Nil for
	// virtual.
	TCBVersion []byte
	// Debug reports that the host can debug the guest (SEV-SNP guest policy
	// DEBUG bit; TDX TD attribute DEBUG): its memory is not confidential.
	Debug bool
	// HostData is data the host bound at launch (SEV-SNP HOST_DATA, TDX
	// MRCONFIGID); nil when the platform has none.
	HostData []byte
	// RTMRs are TDX's runtime measurement registers, in order; nil
	// elsewhere.
	RTMRs [][]byte
}

// MarshalJSON shows what was verified with byte strings in hex, as
// operators compare them with policies (GET /node/quotes, coco attest
// verify --json).
func (v *Verified) MarshalJSON() ([]byte, error) {
	rtmrs := make([]string, len(v.RTMRs))
	for i, r := range v.RTMRs {
		rtmrs[i] = hex.EncodeToString(r)
	}
	return json.Marshal(struct {
		Platform    string   `json:"platform"`
		Measurement string   `json:"measurement"`
		ReportData  string   `json:"report_data"`
		Secure      bool     `json:"secure"`
		TCB         string   `json:"tcb,omitempty"`
		TCBVersion  string   `json:"tcb_version,omitempty"`
		Debug       bool     `json:"debug"`
		HostData    string   `json:"host_data,omitempty"`
		RTMRs       []string `json:"rtmrs,omitempty"`
	}{v.Platform, v.Measurement.String(), v.ReportData.String(), v.Secure, v.TCB, hex.EncodeToString(v.TCBVersion),
		v.Debug, hex.EncodeToString(v.HostData), rtmrs})
}

// Verifier checks evidence bundles. now is the time certificates, CRLs and
// collateral are checked against; a platform without them ignores it.
// Implementations are safe for concurrent use.
type Verifier interface {
	Verify(b *Bundle, now time.Time) (*Verified, error)
}

// verifierFactories holds every platform this build can verify, by name.
// Hardware platforms add themselves here.
var verifierFactories = map[string]func() (Verifier, error){
	PlatformVirtual: func() (Verifier, error) { return VirtualVerifier{}, nil },
}

func supportedPlatforms() []string {
	return slices.Sorted(maps.Keys(verifierFactories))
}

// Registry is a Verifier that dispatches on Bundle.Platform to the verifier
// of that platform. A node verifies evidence from platforms other than its
// own (a virtual node can check an SEV-SNP joiner), so a Registry is separate
// from Platform. It is immutable after NewVerifier and safe for concurrent
// use.
type Registry struct {
	verifiers map[string]Verifier
}

// NewVerifier returns a Registry for the named platforms, or for every
// platform this build supports if none are named. A name it does not know is
// an *UnknownPlatformError.
func NewVerifier(platforms ...string) (*Registry, error) {
	if len(platforms) == 0 {
		platforms = supportedPlatforms()
	}
	r := &Registry{verifiers: make(map[string]Verifier, len(platforms))}
	for _, name := range platforms {
		if _, dup := r.verifiers[name]; dup {
			continue
		}
		mk, ok := verifierFactories[name]
		if !ok {
			return nil, &UnknownPlatformError{Platform: name, Supported: supportedPlatforms()}
		}
		v, err := mk()
		if err != nil {
			return nil, fmt.Errorf("attest: %s verifier: %w", name, err)
		}
		r.verifiers[name] = v
	}
	return r, nil
}

// Platforms returns the names r verifies, sorted.
func (r *Registry) Platforms() []string {
	return slices.Sorted(maps.Keys(r.verifiers))
}

// Verify implements Verifier. A nil or malformed bundle wraps ErrBundle; a
// platform r was not built for is an *UnknownPlatformError naming it; the
// platform verifier's refusal wraps ErrEvidence.
func (r *Registry) Verify(b *Bundle, now time.Time) (*Verified, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bundle", ErrBundle)
	}
	if err := b.validate(); err != nil {
		return nil, err
	}
	v, ok := r.verifiers[b.Platform]
	if !ok {
		return nil, &UnknownPlatformError{Platform: b.Platform, Supported: r.Platforms()}
	}
	res, err := v.Verify(b, now)
	if err != nil {
		return nil, err
	}
	if res == nil || res.Platform != b.Platform {
		// A platform verifier bug; never let it pass as success.
		return nil, fmt.Errorf("%w: %s verifier returned a result for another platform", ErrEvidence, b.Platform)
	}
	return res, nil
}
