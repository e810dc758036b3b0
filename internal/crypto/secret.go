package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"sync"

	"github.com/cocoledger/coco/internal/ids"
)

// SecretSize is the size of a ledger secret: an AES-256 key.
const SecretSize = 32

// Errors of ledger encryption.
var (
	ErrDecrypt   = errors.New("crypto: private part does not decrypt (wrong secret or tampered entry)")
	ErrViewRange = errors.New("crypto: view does not fit the 32-bit nonce field")
)

// LedgerSecret encrypts private write sets and derives commit evidence.
type LedgerSecret struct {
	raw   [SecretSize]byte
	aead  cipher.AEAD
	ceKey []byte
	// macs pools keyed HMAC-SHA256 states: every transaction derives its
	// commit evidence, and keying a fresh HMAC each time was a measurable
	// share of the primary's CPU.
	macs sync.Pool
}

// NewLedgerSecret draws a fresh secret from rnd (crypto/rand if nil).
func NewLedgerSecret(rnd io.Reader) (*LedgerSecret, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var raw [SecretSize]byte
	if _, err := io.ReadFull(rnd, raw[:]); err != nil {
		return nil, fmt.Errorf("crypto: ledger secret: %w", err)
	}
	return LedgerSecretFromBytes(raw[:])
}

// LedgerSecretFromBytes rebuilds a secret from its raw bytes (after unsealing).
func LedgerSecretFromBytes(b []byte) (*LedgerSecret, error) {
	if len(b) != SecretSize {
		return nil, fmt.Errorf("crypto: ledger secret is %d bytes, want %d", len(b), SecretSize)
	}
	s := &LedgerSecret{}
	copy(s.raw[:], b)
	block, err := aes.NewCipher(s.raw[:])
	if err != nil {
		return nil, fmt.Errorf("crypto: ledger secret: %w", err)
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("crypto: ledger secret: %w", err)
	}
	if s.ceKey, err = hkdf.Key(sha256.New, s.raw[:], nil, "coco commit evidence v1", 32); err != nil {
		return nil, fmt.Errorf("crypto: commit evidence key: %w", err)
	}
	return s, nil
}

// Bytes returns a copy of the raw secret, for sealing.
func (s *LedgerSecret) Bytes() []byte { return append([]byte(nil), s.raw[:]...) }

// Equal compares two secrets in constant time.
func (s *LedgerSecret) Equal(o *LedgerSecret) bool { return hmac.Equal(s.raw[:], o.raw[:]) }

// Overhead is the number of bytes Seal adds to a plaintext.
func (s *LedgerSecret) Overhead() int { return s.aead.Overhead() }

func nonce(view ids.View, seqno ids.Seqno) ([12]byte, error) {
	var n [12]byte
	if view > math.MaxUint32 {
		return n, fmt.Errorf("%w: %d", ErrViewRange, view)
	}
	binary.BigEndian.PutUint32(n[:4], uint32(view))
	binary.BigEndian.PutUint64(n[4:], uint64(seqno))
	return n, nil
}

// Seal appends to dst the encryption of plaintext for transaction (view,
// seqno), authenticating aad as well.
func (s *LedgerSecret) Seal(dst []byte, view ids.View, seqno ids.Seqno, plaintext, aad []byte) ([]byte, error) {
	n, err := nonce(view, seqno)
	if err != nil {
		return nil, err
	}
	return s.aead.Seal(dst, n[:], plaintext, aad), nil
}

// Open appends to dst the decryption of ciphertext for (view, seqno).
func (s *LedgerSecret) Open(dst []byte, view ids.View, seqno ids.Seqno, ciphertext, aad []byte) ([]byte, error) {
	n, err := nonce(view, seqno)
	if err != nil {
		return nil, err
	}
	out, err := s.aead.Open(dst, n[:], ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w at %d.%d", ErrDecrypt, view, seqno)
	}
	return out, nil
}

// CommitEvidence returns the commit evidence string of a transaction.
func (s *LedgerSecret) CommitEvidence(id ids.TxID) string {
	var buf [commitEvidenceMax]byte
	return string(s.appendCommitEvidence(buf[:0], id))
}

// CommitEvidenceDigest is SHA-256 of the commit evidence string: the middle
// third of a Merkle leaf.
func (s *LedgerSecret) CommitEvidenceDigest(id ids.TxID) [32]byte {
	var buf [commitEvidenceMax]byte
	return sha256.Sum256(s.appendCommitEvidence(buf[:0], id))
}

// commitEvidenceMax bounds a commit evidence string: "ce:", two 20-digit
// numbers and a dot, ":", 64 hex digits.
const commitEvidenceMax = 3 + 20 + 1 + 20 + 1 + 2*sha256.Size

// appendCommitEvidence appends "ce:<txid>:<hex HMAC(txid)>" to dst.
func (s *LedgerSecret) appendCommitEvidence(dst []byte, id ids.TxID) []byte {
	dst = append(dst, "ce:"...)
	start := len(dst)
	dst, _ = id.AppendText(dst) // never fails
	mac, _ := s.macs.Get().(hash.Hash)
	if mac == nil {
		mac = hmac.New(sha256.New, s.ceKey)
	}
	mac.Reset()
	mac.Write(dst[start:])
	var sum [sha256.Size]byte
	dst = append(dst, ':')
	dst = hex.AppendEncode(dst, mac.Sum(sum[:0]))
	s.macs.Put(mac)
	return dst
}

// ParseCommitEvidence checks the shape of a commit evidence string and
// returns the TxID it names.
func ParseCommitEvidence(ce string) (ids.TxID, error) {
	if len(ce) < 3 || ce[:3] != "ce:" {
		return ids.TxID{}, fmt.Errorf("crypto: commit evidence %q does not start with \"ce:\"", ce)
	}
	rest := ce[3:]
	i := len(rest) - 2*sha256.Size - 1
	if i < 3 || rest[i] != ':' {
		return ids.TxID{}, fmt.Errorf("crypto: commit evidence %q: want ce:<view>.<seqno>:<64 hex>", ce)
	}
	if _, err := hex.DecodeString(rest[i+1:]); err != nil {
		return ids.TxID{}, fmt.Errorf("crypto: commit evidence %q: %v", ce, err)
	}
	return ids.ParseTxID(rest[:i])
}
