package attest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	"github.com/google/go-sev-guest/kds"
)

// ErrSNPDevice: the SEV-SNP guest device is missing (this is not an SEV-SNP
// guest, or the device is not accessible), refused or failed a request, or
// the host answered without the VCEK/VLEK certificate evidence needs.
var ErrSNPDevice = errors.New("attest: sev-snp guest device")

// SNP is the AMD SEV-SNP guest platform. It asks the guest firmware, through
// go-sev-guest, for attestation reports (configfs-tsm, or the /dev/sev-guest
// ioctls on older kernels) and for sealing keys (MSG_KEY_REQ, which only
// /dev/sev-guest offers). It supports guests that run at VMPL 0 (no SVSM or
// paravisor below them).
//
// It is safe for concurrent use: every operation opens the device for
// itself, and the firmware serializes guest requests.
type SNP struct {
	quotes client.QuoteProvider
	open   func() (client.Device, error)
}

var _ Platform = (*SNP)(nil)

// NewSNP returns the SEV-SNP platform of the guest it runs in. It fails,
// wrapping ErrSNPDevice and naming the device, when /dev/sev-guest cannot be
// opened or no report interface is available.
func NewSNP() (*SNP, error) {
	p := &SNP{open: openSNPDevice}
	d, err := p.open()
	if err != nil {
		return nil, err
	}
	if err := d.Close(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSNPDevice, err)
	}
	if p.quotes, err = client.GetQuoteProvider(); err != nil {
		return nil, fmt.Errorf("%w: no attestation report interface (configfs-tsm or /dev/sev-guest): %w", ErrSNPDevice, err)
	}
	return p, nil
}

func openSNPDevice() (client.Device, error) {
	d, err := client.OpenDevice()
	if err != nil { // its message names the device path
		return nil, fmt.Errorf("%w: %w", ErrSNPDevice, err)
	}
	return d, nil
}

// Name implements Platform.
func (*SNP) Name() string { return PlatformSEVSNP }

// Secure implements Platform.
func (*SNP) Secure() bool { return true }

// Evidence implements Platform: a report binding rd, with the VCEK (or VLEK)
// certificate the host supplies in the certificate table of the extended
// guest request as the only endorsement (the verifier pins ASK and ARK).
// Verification is offline, so without that certificate there is no
// evidence: the host must be configured to supply it (QEMU's certs-path,
// or SNP_SET_EXT_CONFIG on older hosts, with the VCEK that AMD's KDS issues
// for the chip at its reported TCB).
func (p *SNP) Evidence(rd ReportData) (*Bundle, error) {
	raw, err := p.quotes.GetRawQuote(rd)
	if err != nil {
		return nil, fmt.Errorf("%w: attestation report: %w", ErrSNPDevice, err)
	}
	if len(raw) < abi.ReportSize {
		return nil, fmt.Errorf("%w: attestation report is %d bytes, want at least %d", ErrSNPDevice, len(raw), abi.ReportSize)
	}
	report, table := raw[:abi.ReportSize], raw[abi.ReportSize:]
	proto, err := abi.ReportToProto(report)
	if err != nil {
		return nil, fmt.Errorf("%w: attestation report: %w", ErrSNPDevice, err)
	}
	if !bytes.Equal(proto.ReportData, rd[:]) {
		return nil, fmt.Errorf("%w: the report does not bind the report data asked for", ErrSNPDevice)
	}
	signer, err := abi.ParseSignerInfo(proto.SignerInfo)
	if err != nil {
		return nil, fmt.Errorf("%w: attestation report: %w", ErrSNPDevice, err)
	}
	guid := abi.VcekGUID
	if signer.SigningKey == abi.VlekReportSigner {
		guid = abi.VlekGUID
	}
	var certs abi.CertTable
	if err := certs.Unmarshal(table); err != nil {
		return nil, fmt.Errorf("%w: certificate table: %w", ErrSNPDevice, err)
	}
	ek, err := certs.GetByGUIDString(guid)
	if err != nil || len(ek) == 0 {
		return nil, fmt.Errorf("%w: the host supplied no %v certificate with the report; configure the host to provide it (see attest.SNP.Evidence)", ErrSNPDevice, signer.SigningKey)
	}
	return &Bundle{
		Platform:     PlatformSEVSNP,
		Evidence:     slices.Clone(report),
		Endorsements: [][]byte{slices.Clone(ek)},
	}, nil
}

// A sealed blob is snpSealMagic, the TCB_VERSION the key was derived at (8
// bytes, big-endian), a 12-byte nonce, and the AES-256-GCM ciphertext of the
// plaintext with the header (magic and TCB) as additional data.
const (
	snpSealMagic   = "COCO-SNP-SEALED-V1\n"
	snpSealTCBSize = 8
	snpSealHeader  = len(snpSealMagic) + snpSealTCBSize
	snpSealMinSize = snpSealHeader + 12 + 16 // GCM nonce and tag
	snpSealInfo    = "coco sev-snp seal key v1"
)

// Seal implements Platform. The key is derived by the firmware (MSG_KEY_REQ)
// from the chip's VCEK root, mixing in the guest's launch measurement, its
// guest policy and the current COMMITTED_TCB, which the blob records:
// only a guest launched with the same measurement and policy on the same
// chip, at that TCB or a later one, can unseal. A firmware rolled back below
// that TCB cannot derive the key.
//
// The measurement is only as specific as the launch image: if it covers
// nothing but a widely shared firmware (a cloud's stock OVMF), any guest
// launched with that firmware and policy on the same chip derives the same
// key (go-sev-guest's LIMITATIONS.md). Coco's image must be measured.
func (p *SNP) Seal(plaintext []byte) ([]byte, error) {
	tcb, err := p.committedTCB()
	if err != nil {
		return nil, err
	}
	aead, err := p.sealAEAD(tcb)
	if err != nil {
		return nil, err
	}
	blob := make([]byte, snpSealHeader, snpSealHeader+aead.NonceSize()+len(plaintext)+aead.Overhead())
	copy(blob, snpSealMagic)
	binary.BigEndian.PutUint64(blob[len(snpSealMagic):], tcb)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("attest: sev-snp seal: %w", err)
	}
	blob = append(blob, nonce...)
	return aead.Seal(blob, nonce, plaintext, blob[:snpSealHeader]), nil
}

// Unseal implements Platform. A blob this platform did not seal, or that was
// modified, wraps ErrSealedBlob; a key the firmware refuses to derive (the
// TCB was rolled back, another chip) wraps ErrSNPDevice.
func (p *SNP) Unseal(blob []byte) ([]byte, error) {
	if !bytes.HasPrefix(blob, []byte(snpSealMagic)) {
		return nil, fmt.Errorf("%w: missing the sev-snp sealing header", ErrSealedBlob)
	}
	if len(blob) < snpSealMinSize {
		return nil, fmt.Errorf("%w: sev-snp sealed blob is truncated", ErrSealedBlob)
	}
	tcb := binary.BigEndian.Uint64(blob[len(snpSealMagic):snpSealHeader])
	aead, err := p.sealAEAD(tcb)
	if err != nil {
		return nil, err
	}
	rest := blob[snpSealHeader:]
	plaintext, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], blob[:snpSealHeader])
	if err != nil {
		return nil, fmt.Errorf("%w: sev-snp sealed blob does not authenticate (modified, or sealed by another guest or chip)", ErrSealedBlob)
	}
	return plaintext, nil
}

// committedTCB reads COMMITTED_TCB from a fresh report: the highest TCB the
// firmware will derive keys at.
func (p *SNP) committedTCB() (uint64, error) {
	raw, err := p.quotes.GetRawQuote(ReportData{})
	if err != nil {
		return 0, fmt.Errorf("%w: attestation report: %w", ErrSNPDevice, err)
	}
	report, err := abi.ReportToProto(raw)
	if err != nil {
		return 0, fmt.Errorf("%w: attestation report: %w", ErrSNPDevice, err)
	}
	return report.CommittedTcb, nil
}

// sealAEAD asks the firmware for the guest's key at tcb and makes an
// AES-256-GCM key of it (HKDF, so the firmware key is used for nothing else).
func (p *SNP) sealAEAD(tcb uint64) (cipher.AEAD, error) {
	d, err := p.open()
	if err != nil {
		return nil, err
	}
	resp, err := client.GetDerivedKeyAcknowledgingItsLimitations(d, &client.SnpDerivedKeyReq{
		UseVCEK: true, // the VMRK exists only with a migration agent
		GuestFieldSelect: client.GuestFieldSelect{
			Measurement: true,
			GuestPolicy: true,
			TCBVersion:  true,
		},
		TCBVersion: tcb,
	})
	closeErr := d.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: sealing key at TCB %s: %w", ErrSNPDevice, snpTCBText(kds.TCBVersion(tcb)), err)
	}
	if closeErr != nil {
		return nil, fmt.Errorf("%w: %w", ErrSNPDevice, closeErr)
	}
	key, err := hkdf.Key(sha256.New, resp.Data[:], nil, snpSealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("attest: sev-snp sealing key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("attest: sev-snp sealing key: %w", err)
	}
	return cipher.NewGCM(block)
}
