package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

// PlatformSEVSNP is the name of the AMD SEV-SNP platform.
//
// A sev-snp bundle holds:
//
//   - evidence: the raw ATTESTATION_REPORT exactly as the guest firmware
//     returns it (abi.ReportSize = 1184 bytes, report versions 2 to 5),
//     signed with ECDSA P-384/SHA-384 by the chip's VCEK or, on clouds that
//     provision one, the VLEK;
//   - endorsements, each one DER X.509 certificate, in this order:
//     [0] the VCEK (or VLEK) certificate of the key that signed the report,
//     issued by AMD's KDS for the report's REPORTED_TCB (required);
//     [1] the ASK (or, for a VLEK, the ASVK) and [2] the ARK of the
//     processor line (optional). The verifier never trusts [1] and [2]: it
//     uses the AMD roots pinned in the binary and refuses a bundle whose [1]
//     or [2] is not byte-for-byte the pinned certificate.
//
// Verification is offline: nothing is fetched, so the VCEK must travel in the
// bundle. Revocation lists are not consulted.
const PlatformSEVSNP = "sev-snp"

func init() { verifierFactories[PlatformSEVSNP] = newSNPVerifier }

// snpMaxEndorsements: the endorsement key, its intermediate and the root.
const snpMaxEndorsements = 3

// SNPCheck names the step at which an SEV-SNP report was refused. The values
// are stable (logs, tests).
type SNPCheck string

// The SEV-SNP verification steps, in the order Verify runs them; the first
// that fails is reported.
const (
	// SNPCheckFormat: the report or a certificate is malformed, or the
	// bundle has more endorsements than the three allowed.
	SNPCheckFormat SNPCheck = "format"
	// SNPCheckSigner: the report is unsigned, or endorsement 0 is missing or
	// is not a certificate for the kind of key (VCEK, VLEK) that signed it.
	SNPCheckSigner SNPCheck = "signer"
	// SNPCheckSignature: the report's signature does not verify under
	// endorsement 0 (a modified report, or another key signed it).
	SNPCheckSignature SNPCheck = "signature"
	// SNPCheckProduct: the processor line is unknown or not verified by
	// this build, or the endorsement key was issued for another line.
	SNPCheckProduct SNPCheck = "product"
	// SNPCheckChain: the endorsement key is not certified by the pinned AMD
	// ASK/ASVK and ARK, or the bundle carries an intermediate or root other
	// than the pinned ones.
	SNPCheckChain SNPCheck = "chain"
	// SNPCheckExpired: a certificate of the chain expired before now.
	SNPCheckExpired SNPCheck = "expired"
	// SNPCheckNotYetValid: a certificate of the chain is not valid until
	// after now.
	SNPCheckNotYetValid SNPCheck = "not_yet_valid"
	// SNPCheckTCB: the report's REPORTED_TCB is not the TCB the VCEK/VLEK
	// certificate was issued for.
	SNPCheckTCB SNPCheck = "tcb"
	// SNPCheckChipID: the report's CHIP_ID is not the VCEK's hardware id.
	SNPCheckChipID SNPCheck = "chip_id"
)

// SNPError is the refusal of SEV-SNP evidence: which check failed and why.
// It matches ErrEvidence.
type SNPError struct {
	Check SNPCheck
	Err   error
}

func (e *SNPError) Error() string {
	return fmt.Sprintf("%v: sev-snp %s: %v", ErrEvidence, e.Check, e.Err)
}

// Is makes errors.Is(err, ErrEvidence) hold.
func (e *SNPError) Is(target error) bool { return target == ErrEvidence }

// Unwrap returns the underlying error.
func (e *SNPError) Unwrap() error { return e.Err }

func snpRefuse(check SNPCheck, format string, args ...any) error {
	return &SNPError{Check: check, Err: fmt.Errorf(format, args...)}
}

// snpVerifier verifies sev-snp bundles against pinned roots, one
// trust.AMDRootCerts (ARK, ASK and, for VLEKs, ASVK) per processor line. It is
// immutable and safe for concurrent use: go-sev-guest only reads the roots
// when revocation checking is off, as it is here.
type snpVerifier struct {
	roots   map[string]*trust.AMDRootCerts // by product line ("Milan", "Genoa")
	trusted map[string][]*trust.AMDRootCerts
	// getter is what go-sev-guest would fetch certificates and CRLs with.
	// The options Verify passes never let it; offlineGetter refuses anyway,
	// and tests substitute one that counts the attempts.
	getter trust.HTTPSGetter
}

// newSNPVerifier is the registered factory: it trusts AMD's ARK, ASK and
// ASVK for Milan and Genoa as embedded in go-sev-guest (the certificates
// AMD's KDS serves at /vcek/v1/{line}/cert_chain and /vlek/v1/{line}/cert_chain).
func newSNPVerifier() (Verifier, error) {
	roots, err := amdSNPRoots()
	if err != nil {
		return nil, err
	}
	return newSNPVerifierWithRoots(roots), nil
}

// newSNPVerifierWithRoots returns a verifier trusting exactly roots, keyed
// by product line; each root's ProductLine must be its key. Tests use it
// with go-sev-guest's fake AMD chain.
func newSNPVerifierWithRoots(roots map[string]*trust.AMDRootCerts) *snpVerifier {
	trusted := make(map[string][]*trust.AMDRootCerts, len(roots))
	for line, r := range roots {
		trusted[line] = []*trust.AMDRootCerts{r}
	}
	return &snpVerifier{roots: roots, trusted: trusted, getter: offlineGetter{}}
}

// amdSNPRoots parses go-sev-guest's embedded AMD certificates once per
// process. Turin is left out on purpose: go-sev-guest v0.15.0 knows only the
// Milan/Genoa TCB_VERSION layout (Turin's adds an FMC SPL) and 64-byte VCEK
// hardware ids (Turin's are 8 bytes), so it cannot check a Turin report.
var amdSNPRoots = sync.OnceValues(func() (map[string]*trust.AMDRootCerts, error) {
	lines := []struct {
		line       string
		vcek, vlek []byte
	}{
		{"Milan", trust.AskArkMilanVcekBytes, trust.AskArkMilanVlekBytes},
		{"Genoa", trust.AskArkGenoaVcekBytes, trust.AskArkGenoaVlekBytes},
	}
	roots := make(map[string]*trust.AMDRootCerts, len(lines))
	for _, l := range lines {
		r := trust.AMDRootCertsProduct(l.line)
		if err := r.FromKDSCertBytes(l.vcek); err != nil {
			return nil, fmt.Errorf("attest: sev-snp: embedded %s VCEK roots: %w", l.line, err)
		}
		var vlek trust.ProductCerts
		if err := vlek.FromKDSCertBytes(l.vlek); err != nil {
			return nil, fmt.Errorf("attest: sev-snp: embedded %s VLEK roots: %w", l.line, err)
		}
		pc := r.ProductCerts
		if pc.Ask == nil || pc.Ark == nil || vlek.Asvk == nil || vlek.Ark == nil || !pc.Ark.Equal(vlek.Ark) {
			return nil, fmt.Errorf("attest: sev-snp: embedded %s roots are incomplete or disagree on the ARK", l.line)
		}
		pc.Asvk = vlek.Asvk
		roots[l.line] = r
	}
	return roots, nil
})

// offlineGetter is the getter go-sev-guest is given: verification never
// fetches anything, whatever the library version would like to do.
type offlineGetter struct{}

func (offlineGetter) Get(url string) ([]byte, error) {
	return nil, fmt.Errorf("attest: sev-snp verification is offline; not fetching %s", url)
}

// Verify implements Verifier: it checks b's report and certificates at time
// now, offline. It establishes that an AMD SEV-SNP processor of a pinned
// product line, at the TCB its VCEK/VLEK certifies, produced the report; it
// does not judge the guest policy (debug), VMPL, TCB level, measurement or
// report data: Policy does. Refusals are *SNPError (matching ErrEvidence).
func (v *snpVerifier) Verify(b *Bundle, now time.Time) (*Verified, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bundle", ErrBundle)
	}
	if b.Platform != PlatformSEVSNP {
		return nil, fmt.Errorf("%w: %s bundle given to the sev-snp verifier", ErrEvidence, b.Platform)
	}

	// The report: exactly one ATTESTATION_REPORT, reserved fields zero.
	raw := b.Evidence
	if len(raw) != abi.ReportSize {
		return nil, snpRefuse(SNPCheckFormat, "report is %d bytes, want %d", len(raw), abi.ReportSize)
	}
	if err := abi.ValidateReportFormat(raw); err != nil {
		return nil, snpRefuse(SNPCheckFormat, "%v", err)
	}
	report, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, snpRefuse(SNPCheckFormat, "%v", err)
	}
	if report.SignatureAlgo != abi.SignEcdsaP384Sha384 {
		return nil, snpRefuse(SNPCheckFormat, "signature algorithm %d, want %d (ECDSA P-384 with SHA-384)", report.SignatureAlgo, abi.SignEcdsaP384Sha384)
	}
	signer, err := abi.ParseSignerInfo(report.SignerInfo)
	if err != nil {
		return nil, snpRefuse(SNPCheckFormat, "%v", err)
	}
	key := signer.SigningKey

	// The signer: a VCEK or VLEK, whose certificate is endorsement 0.
	if key != abi.VcekReportSigner && key != abi.VlekReportSigner {
		return nil, snpRefuse(SNPCheckSigner, "report is not signed by a VCEK or VLEK (SIGNING_KEY %v)", key)
	}
	switch n := len(b.Endorsements); {
	case n == 0:
		return nil, snpRefuse(SNPCheckSigner, "no %v certificate: a sev-snp bundle must carry it as endorsement 0 (verification is offline)", key)
	case n > snpMaxEndorsements:
		return nil, snpRefuse(SNPCheckFormat, "%d endorsements, at most %d allowed (%v, ASK/ASVK, ARK)", n, snpMaxEndorsements, key)
	}
	ek, err := x509.ParseCertificate(b.Endorsements[0])
	if err != nil {
		return nil, snpRefuse(SNPCheckFormat, "endorsement 0 (%v certificate): %v", key, err)
	}
	if want := "SEV-" + key.String(); ek.Subject.CommonName != want {
		return nil, snpRefuse(SNPCheckSigner, "report is signed by a %v but endorsement 0 is a certificate for %q", key, ek.Subject.CommonName)
	}

	// The signature, before anything else is taken from the certificate:
	// only a report its key signed is worth checking further.
	if err := verify.SnpReportSignature(raw, ek); err != nil {
		return nil, snpRefuse(SNPCheckSignature, "report is not signed by the %v of endorsement 0: %v", key, err)
	}

	// The product line selects the pinned roots.
	line, err := snpProductLine(report, ek, key)
	if err != nil {
		return nil, snpRefuse(SNPCheckProduct, "%v", err)
	}
	root := v.roots[line]
	if root == nil {
		return nil, snpRefuse(SNPCheckProduct, "no pinned AMD roots for %s processors (this build verifies %v)", line, slices.Sorted(maps.Keys(v.roots)))
	}
	ica, icaName, wantIssuer := root.ProductCerts.Ask, "ASK", "SEV-"+line
	if key == abi.VlekReportSigner {
		ica, icaName, wantIssuer = root.ProductCerts.Asvk, "ASVK", "SEV-VLEK-"+line
	}
	if ek.Issuer.CommonName != wantIssuer {
		return nil, snpRefuse(SNPCheckProduct, "report is from a %s processor but its %v was issued by %q, want %q", line, key, ek.Issuer.CommonName, wantIssuer)
	}
	ark := root.ProductCerts.Ark
	if ica == nil || ark == nil {
		return nil, snpRefuse(SNPCheckChain, "no pinned %s %s or ARK", line, icaName)
	}

	// Endorsements 1 and 2 are conveniences, never trust: the pinned ones
	// or nothing.
	for i, e := range b.Endorsements[1:] {
		want, name := ica, icaName
		if i == 1 {
			want, name = ark, "ARK"
		}
		if !bytes.Equal(e, want.Raw) {
			return nil, snpRefuse(SNPCheckChain, "endorsement %d is not AMD's pinned %s %s certificate", i+1, line, name)
		}
	}

	// Validity at now, certificate by certificate, so that an expired
	// certificate is reported as such (x509 would only say the chain fails).
	for _, c := range []struct {
		name string
		cert *x509.Certificate
	}{{key.String(), ek}, {icaName, ica}, {"ARK", ark}} {
		if now.After(c.cert.NotAfter) {
			return nil, snpRefuse(SNPCheckExpired, "%s certificate expired at %s (verification time %s)", c.name, c.cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if now.Before(c.cert.NotBefore) {
			return nil, snpRefuse(SNPCheckNotYetValid, "%s certificate is not valid before %s (verification time %s)", c.name, c.cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}

	// The chain, by go-sev-guest: KDS certificate profile, issuer, and
	// signatures up to the pinned ARK, at now. DisableCertFetching and
	// CheckRevocations=false keep it offline.
	chain := &spb.CertificateChain{}
	if key == abi.VcekReportSigner {
		chain.VcekCert = b.Endorsements[0]
	} else {
		chain.VlekCert = b.Endorsements[0]
	}
	opts := &verify.Options{
		DisableCertFetching: true,
		CheckRevocations:    false,
		Getter:              v.getter,
		Now:                 now,
		TrustedRoots:        v.trusted,
	}
	if err := verify.SnpAttestation(&spb.Attestation{Report: report, CertificateChain: chain}, opts); err != nil {
		return nil, snpRefuse(SNPCheckChain, "%v is not certified by AMD's pinned %s roots: %v", key, line, err)
	}

	// The TCB: a VCEK/VLEK is issued per TCB, and the firmware signs with
	// the key of REPORTED_TCB, so the two must be equal; otherwise the host
	// supplied a certificate for another TCB than the report claims.
	exts, err := kds.CertificateExtensions(ek, key)
	if err != nil {
		return nil, snpRefuse(SNPCheckFormat, "%v certificate extensions: %v", key, err)
	}
	if reported := kds.TCBVersion(report.ReportedTcb); exts.TCBVersion != reported {
		return nil, snpRefuse(SNPCheckTCB, "report's REPORTED_TCB (%s) is not the TCB its %v certifies (%s)", snpTCBText(reported), key, snpTCBText(exts.TCBVersion))
	}
	// A VCEK is per chip; CHIP_ID is zero when the host masks it.
	var masked [abi.ChipIDSize]byte
	if key == abi.VcekReportSigner && !bytes.Equal(report.ChipId, masked[:]) && !bytes.Equal(report.ChipId, exts.HWID) {
		return nil, snpRefuse(SNPCheckChipID, "report's CHIP_ID %x… is not the VCEK's hardware id %x…", report.ChipId[:8], exts.HWID[:8])
	}

	policy, _ := abi.ParseSnpPolicy(report.Policy) // ReportToProto has parsed it
	res := &Verified{
		Platform:    PlatformSEVSNP,
		Measurement: slices.Clone(report.Measurement),
		Secure:      true,
		TCB:         snpTCBText(kds.TCBVersion(report.ReportedTcb)),
		TCBVersion:  binary.BigEndian.AppendUint64(nil, report.ReportedTcb),
		Debug:       policy.Debug,
		HostData:    slices.Clone(report.HostData),
	}
	copy(res.ReportData[:], report.ReportData)
	return res, nil
}

// snpProductLine returns the processor line ("Milan", …) of the report: a
// version 3 or later report names its processor (CPUID family, model,
// stepping); a version 2 report does not, and its VCEK/VLEK certificate's
// productName is the only source.
func snpProductLine(report *spb.Report, ek *x509.Certificate, key abi.ReportSigner) (string, error) {
	if fms := report.GetCpuid1EaxFms(); fms != 0 {
		line := kds.ProductLineFromFms(fms)
		if _, err := kds.ParseProductLine(line); err != nil {
			return "", fmt.Errorf("report is from an unknown processor (CPUID_1_EAX %#08x)", fms)
		}
		return line, nil
	}
	exts, err := kds.CertificateExtensions(ek, key)
	if err != nil {
		return "", fmt.Errorf("%v certificate extensions: %w", key, err)
	}
	product, err := kds.ParseProductName(exts.ProductName, key)
	if err != nil {
		return "", fmt.Errorf("%v certificate: %w", key, err)
	}
	return kds.ProductLine(product), nil
}

// snpTCBText renders a Milan/Genoa TCB_VERSION with the names AMD's KDS uses
// for its components.
func snpTCBText(tcb kds.TCBVersion) string {
	p := kds.DecomposeTCBVersion(tcb)
	return fmt.Sprintf("blSPL=%d teeSPL=%d snpSPL=%d ucodeSPL=%d", p.BlSpl, p.TeeSpl, p.SnpSpl, p.UcodeSpl)
}
