package attest

import (
	"crypto"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Refusal reasons: the stable, machine-readable part of a *RefusedError.
// They are part of the join API (error codes on both sides); never rename one.
const (
	// ReasonEvidenceInvalid: the bundle is malformed or its evidence does not
	// verify (only Admit returns it; Check starts from verified evidence).
	ReasonEvidenceInvalid = "evidence_invalid"
	// ReasonPlatformNotAccepted: the policy has no entry for the platform, or
	// this build cannot verify it.
	ReasonPlatformNotAccepted = "platform_not_accepted"
	// ReasonInsecureNotAllowed: the evidence is not hardware-backed (virtual)
	// and the platform's policy does not allow insecure evidence.
	ReasonInsecureNotAllowed = "insecure_not_allowed"
	// ReasonReportDataMismatch: the evidence does not bind the key the node
	// presented (or that key cannot be encoded).
	ReasonReportDataMismatch = "report_data_mismatch"
	// ReasonMeasurementNotAllowed: the measurement is not on the platform's
	// allow-list.
	ReasonMeasurementNotAllowed = "measurement_not_allowed"
	// ReasonDebugNotAllowed: the guest can be debugged by its host (its
	// memory is not confidential) and the policy does not allow it.
	ReasonDebugNotAllowed = "debug_not_allowed"
	// ReasonTCBTooLow: a component of the platform's TCB is below the
	// policy's minimum (firmware or microcode not patched).
	ReasonTCBTooLow = "tcb_too_low"
	// ReasonHostDataNotAllowed: the host data (SEV-SNP HOST_DATA, TDX
	// MRCONFIGID) is not one the policy names.
	ReasonHostDataNotAllowed = "host_data_not_allowed"
	// ReasonRTMRMismatch: a TDX runtime measurement register differs from
	// the value the policy names.
	ReasonRTMRMismatch = "rtmr_mismatch"
)

// Reasons returns every refusal reason, in the order Admit and Check test
// them.
func Reasons() []string {
	return []string{
		ReasonEvidenceInvalid,
		ReasonPlatformNotAccepted,
		ReasonInsecureNotAllowed,
		ReasonDebugNotAllowed,
		ReasonReportDataMismatch,
		ReasonMeasurementNotAllowed,
		ReasonTCBTooLow,
		ReasonHostDataNotAllowed,
		ReasonRTMRMismatch,
	}
}

// RefusedError is a policy refusal. Reason is one of the Reason constants;
// Detail is for people; Err is the underlying error, if any.
type RefusedError struct {
	Reason   string
	Platform string // the bundle's platform, if known
	Detail   string
	Err      error
}

func (e *RefusedError) Error() string {
	var s strings.Builder
	s.WriteString("attest: refused (")
	s.WriteString(e.Reason)
	s.WriteString(")")
	if e.Detail != "" {
		s.WriteString(": ")
		s.WriteString(e.Detail)
	}
	if e.Err != nil {
		s.WriteString(": ")
		s.WriteString(e.Err.Error())
	}
	return s.String()
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Unwrap returns the underlying error.
func (e *RefusedError) Unwrap() error { return e.Err }

// PlatformPolicy is what a Policy accepts from one platform.
type PlatformPolicy struct {
	// Measurements is the allow-list: hex measurements (either case; see
	// Measurement.String). Empty allows nothing.
	Measurements []string
	// AllowInsecure accepts evidence with Verified.Secure false. It must be
	// set for "virtual", whose evidence is always insecure; enabling it says
	// "I accept nodes that prove nothing".
	AllowInsecure bool
	// AllowDebug accepts a guest its host can debug (Verified.Debug).
	AllowDebug bool
	// MinTCB is the lowest TCB accepted, in the encoding of
	// Verified.TCBVersion (hex): every byte of the evidence's TCB version,
	// each a component's security version, must be at least this one's.
	// Empty: any TCB.
	MinTCB string
	// HostData lists the accepted host data (hex); empty: any.
	HostData []string
	// RTMRs names the value each TDX runtime measurement register must
	// have (hex), by index; "" or a missing index: any.
	RTMRs []string
}

// Policy decides whether verified evidence may join. Platforms maps a
// platform name to what is accepted from it; a platform with no entry is
// refused. A Policy is a value; it is not modified by its methods, and is
// safe for concurrent use as long as no one modifies it.
type Policy struct {
	Platforms map[string]PlatformPolicy
}

// Validate reports allow-list entries that could never match: empty or not
// hex. Check itself never fails on them; call Validate where the policy is
// loaded (configuration, governance) to report them.
func (p Policy) Validate() error {
	var errs []error
	for name, pp := range p.Platforms {
		for _, m := range pp.Measurements {
			if _, err := ParseMeasurement(m); err != nil {
				errs = append(errs, fmt.Errorf("platform %s: %w", name, err))
			}
		}
		for what, list := range map[string][]string{"min_tcb": {pp.MinTCB}, "host_data": pp.HostData, "rtmrs": pp.RTMRs} {
			for _, h := range list {
				if _, err := hex.DecodeString(h); err != nil {
					errs = append(errs, fmt.Errorf("platform %s: %s %q is not hex", name, what, h))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Check decides whether v, the result of verifying a bundle, is acceptable
// for a node presenting pub. It is pure. In order, it refuses (with a
// *RefusedError) a platform without a policy entry, insecure evidence the
// entry does not allow, a debuggable guest it does not allow, report data
// other than ReportDataForKey(pub), a measurement not on the entry's
// allow-list, a TCB below its minimum, host data it does not name, and an
// RTMR other than the one it names. A nil v is evidence_invalid.
func (p Policy) Check(v *Verified, pub crypto.PublicKey) error {
	if v == nil {
		return &RefusedError{Reason: ReasonEvidenceInvalid, Detail: "no verified evidence"}
	}
	pp, ok := p.Platforms[v.Platform]
	if !ok {
		return &RefusedError{Reason: ReasonPlatformNotAccepted, Platform: v.Platform,
			Detail: fmt.Sprintf("platform %q is not accepted by the policy", v.Platform)}
	}
	if !v.Secure && !pp.AllowInsecure {
		return &RefusedError{Reason: ReasonInsecureNotAllowed, Platform: v.Platform,
			Detail: fmt.Sprintf("%s evidence is not hardware-backed and the policy does not allow insecure evidence", v.Platform)}
	}
	if v.Debug && !pp.AllowDebug {
		return &RefusedError{Reason: ReasonDebugNotAllowed, Platform: v.Platform,
			Detail: fmt.Sprintf("the %s guest can be debugged by its host, so its memory is not confidential", v.Platform)}
	}
	want, err := ReportDataForKey(pub)
	if err != nil {
		return &RefusedError{Reason: ReasonReportDataMismatch, Platform: v.Platform,
			Detail: "the presented key cannot be bound", Err: err}
	}
	if subtle.ConstantTimeCompare(want[:], v.ReportData[:]) != 1 {
		return &RefusedError{Reason: ReasonReportDataMismatch, Platform: v.Platform,
			Detail: fmt.Sprintf("evidence binds report data %x…, the presented key needs %x…", v.ReportData[:8], want[:8])}
	}
	if !pp.allows(v.Measurement) {
		return &RefusedError{Reason: ReasonMeasurementNotAllowed, Platform: v.Platform,
			Detail: fmt.Sprintf("%s measurement %s is not on the allow-list", v.Platform, v.Measurement)}
	}
	if pp.MinTCB != "" {
		low, _ := hex.DecodeString(pp.MinTCB)
		if len(low) != len(v.TCBVersion) {
			return &RefusedError{Reason: ReasonTCBTooLow, Platform: v.Platform,
				Detail: fmt.Sprintf("the policy's minimum TCB %s is not a %s TCB version (%d bytes, the evidence has %d)", pp.MinTCB, v.Platform, len(low), len(v.TCBVersion))}
		}
		for i := range low {
			if v.TCBVersion[i] < low[i] {
				return &RefusedError{Reason: ReasonTCBTooLow, Platform: v.Platform,
					Detail: fmt.Sprintf("TCB version %x is below the minimum %s (component %d: %d < %d)", v.TCBVersion, pp.MinTCB, i, v.TCBVersion[i], low[i])}
			}
		}
	}
	if len(pp.HostData) > 0 && !slices.ContainsFunc(pp.HostData, func(h string) bool { return strings.EqualFold(h, hex.EncodeToString(v.HostData)) }) {
		return &RefusedError{Reason: ReasonHostDataNotAllowed, Platform: v.Platform,
			Detail: fmt.Sprintf("host data %x is not one the policy accepts", v.HostData)}
	}
	for i, want := range pp.RTMRs {
		if want == "" {
			continue
		}
		if i >= len(v.RTMRs) || !strings.EqualFold(want, hex.EncodeToString(v.RTMRs[i])) {
			return &RefusedError{Reason: ReasonRTMRMismatch, Platform: v.Platform,
				Detail: fmt.Sprintf("RTMR[%d] is not the value the policy names (%s)", i, want)}
		}
	}
	return nil
}

func (pp PlatformPolicy) allows(m Measurement) bool {
	if len(m) == 0 {
		return false
	}
	s := m.String()
	for _, allowed := range pp.Measurements {
		if strings.EqualFold(allowed, s) {
			return true
		}
	}
	return false
}

// Admit verifies b with ver at time now and checks the result against p for
// a node presenting pub: the whole join decision. Every refusal is a
// *RefusedError: a malformed or unverifiable bundle is evidence_invalid, a
// platform p has no entry for (checked before verifying, so nothing is
// fetched or parsed for it) or ver cannot verify is platform_not_accepted,
// and the rest are Check's. On success it returns what was verified.
func (p Policy) Admit(ver Verifier, b *Bundle, pub crypto.PublicKey, now time.Time) (*Verified, error) {
	if b == nil {
		return nil, &RefusedError{Reason: ReasonEvidenceInvalid, Detail: "no evidence bundle"}
	}
	if _, ok := p.Platforms[b.Platform]; !ok {
		return nil, &RefusedError{Reason: ReasonPlatformNotAccepted, Platform: b.Platform,
			Detail: fmt.Sprintf("platform %q is not accepted by the policy", b.Platform)}
	}
	v, err := ver.Verify(b, now)
	if err != nil {
		if errors.Is(err, ErrUnknownPlatform) {
			return nil, &RefusedError{Reason: ReasonPlatformNotAccepted, Platform: b.Platform,
				Detail: fmt.Sprintf("platform %q cannot be verified by this node", b.Platform), Err: err}
		}
		return nil, &RefusedError{Reason: ReasonEvidenceInvalid, Platform: b.Platform, Err: err}
	}
	if err := p.Check(v, pub); err != nil {
		return nil, err
	}
	return v, nil
}
