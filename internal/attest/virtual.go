package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"
)

// VirtualMeasurementSize is the size of a virtual measurement (code id).
const VirtualMeasurementSize = 32

// Virtual is the insecure development platform. Its sealing is not
// confidential and its evidence is not evidence: anyone can produce a virtual
// bundle claiming any measurement and any report data. It exists so that the
// join protocol, policy and allow-lists run end to end without hardware.
//
// The zero value is ready to use and measures the running executable.
type Virtual struct {
	codeID Measurement // nil: SHA-256 of the running executable
}

// NewVirtual returns the virtual platform with the given code id: 64 hex
// digits (either case), used verbatim as the 32-byte measurement; "" selects
// the default, SHA-256 of the running executable (computed once per process,
// on first use). Errors wrap ErrCodeID.
func NewVirtual(codeID string) (Virtual, error) {
	if codeID == "" {
		return Virtual{}, nil
	}
	m, err := hex.DecodeString(codeID)
	if err != nil || len(m) != VirtualMeasurementSize {
		return Virtual{}, fmt.Errorf("%w: virtual code id %q is not %d hex digits", ErrCodeID, codeID, 2*VirtualMeasurementSize)
	}
	return Virtual{codeID: m}, nil
}

var virtualMagic = []byte("COCO-VIRTUAL-SEALED-V1 (NOT CONFIDENTIAL)\n")

// Name implements Platform.
func (Virtual) Name() string { return PlatformVirtual }

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

// Measurement returns the measurement this platform's evidence claims: the
// configured code id, or SHA-256 of the running executable. Its String form
// is what a policy's allow-list must hold (for the default, the output of
// `sha256sum` on the coco binary). Errors wrap ErrExecutable.
func (v Virtual) Measurement() (Measurement, error) {
	if v.codeID != nil {
		return slices.Clone(v.codeID), nil
	}
	m, err := executableDigest()
	if err != nil {
		return nil, err
	}
	return slices.Clone(m), nil
}

// executableDigest hashes the running executable once per process.
var executableDigest = sync.OnceValues(func() (Measurement, error) {
	path, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExecutable, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExecutable, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrExecutable, path, err)
	}
	return h.Sum(nil), nil
})

// virtualEvidenceWire is the CBOR evidence of the virtual platform. Key 0 is
// left unused, as in the bundle where it holds the version.
type virtualEvidenceWire struct {
	Measurement []byte `cbor:"1,keyasint"`
	ReportData  []byte `cbor:"2,keyasint"`
}

// Evidence implements Platform. The bundle holds, as its evidence, the CBOR
// map {1: measurement (32 bytes), 2: report_data (64 bytes)} and no
// endorsements. Nothing signs it.
func (v Virtual) Evidence(rd ReportData) (*Bundle, error) {
	m, err := v.Measurement()
	if err != nil {
		return nil, err
	}
	ev, err := detEnc.Marshal(virtualEvidenceWire{Measurement: m, ReportData: rd[:]})
	if err != nil {
		return nil, fmt.Errorf("attest: encoding virtual evidence: %w", err)
	}
	return &Bundle{Platform: PlatformVirtual, Evidence: ev}, nil
}

// VirtualVerifier checks virtual evidence. It checks STRUCTURE ONLY: the
// evidence is the exact deterministic encoding of a 32-byte measurement and
// 64 bytes of report data, with no endorsements. It cannot check that the
// claims are true, because nothing in virtual evidence is signed: anyone can
// forge it. Verified.Secure is always false, so a Policy refuses it unless it
// allows insecure evidence for "virtual".
type VirtualVerifier struct{}

// Verify implements Verifier; now is unused. Errors wrap ErrEvidence (or
// ErrBundle for a nil or malformed bundle).
func (VirtualVerifier) Verify(b *Bundle, _ time.Time) (*Verified, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bundle", ErrBundle)
	}
	if b.Platform != PlatformVirtual {
		return nil, fmt.Errorf("%w: %s bundle given to the virtual verifier", ErrEvidence, b.Platform)
	}
	if len(b.Endorsements) != 0 {
		return nil, fmt.Errorf("%w: virtual: %d endorsements, want none", ErrEvidence, len(b.Endorsements))
	}
	var w virtualEvidenceWire
	if err := strictDec.Unmarshal(b.Evidence, &w); err != nil {
		return nil, fmt.Errorf("%w: virtual: %w", ErrEvidence, err)
	}
	if len(w.Measurement) != VirtualMeasurementSize {
		return nil, fmt.Errorf("%w: virtual: measurement is %d bytes, want %d", ErrEvidence, len(w.Measurement), VirtualMeasurementSize)
	}
	if len(w.ReportData) != len(ReportData{}) {
		return nil, fmt.Errorf("%w: virtual: report data is %d bytes, want %d", ErrEvidence, len(w.ReportData), len(ReportData{}))
	}
	canon, err := detEnc.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("%w: virtual: %w", ErrEvidence, err)
	}
	if !bytes.Equal(canon, b.Evidence) {
		return nil, fmt.Errorf("%w: virtual: evidence not in deterministic encoding", ErrEvidence)
	}
	v := &Verified{Platform: PlatformVirtual, Measurement: w.Measurement, Secure: false}
	copy(v.ReportData[:], w.ReportData)
	return v, nil
}
