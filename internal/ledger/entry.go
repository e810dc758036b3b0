package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"

	"github.com/cocoledger/coco/internal/ids"
)

// FormatVersion is the version byte of every entry this package writes and
// the only one it reads.
const FormatVersion = 1

// Kind says what an entry's Public part holds.
type Kind uint8

const (
	// KindTx is a transaction: Public is the encoded public write set.
	KindTx Kind = 1
	// KindSignature is a signature transaction: Public is an encoded
	// SignatureRecord. A chunk file always ends on one.
	KindSignature Kind = 2
	// KindRaft is one of raft's own log entries, which carries no
	// transaction: Public is [raft entry type u8] ‖ data (see RaftEmpty and
	// RaftConfChangeV2), Private is empty and both digests are all zeros.
	// Its Merkle leaf is still SHA-256(body) ‖ 0 ‖ 0, so signatures cover
	// configuration changes too.
	KindRaft Kind = 3
)

// The raft entry types a KindRaft entry's first Public byte may hold. They
// are raftpb.EntryType values; raftpb.EntryConfChange (1, the version 1
// configuration change) is not used by Coco and is not allowed.
const (
	// RaftEmpty is an EntryNormal without data: the empty entry a new
	// leader appends on election. Nothing follows the type byte.
	RaftEmpty byte = 0
	// RaftConfChangeV2 is an EntryConfChangeV2: the bytes after the type
	// byte are a marshalled raftpb.ConfChangeV2, possibly none (the empty
	// ConfChangeV2 leaves a joint configuration).
	RaftConfChangeV2 byte = 2
)

func (k Kind) valid() bool { return k == KindTx || k == KindSignature || k == KindRaft }

func (k Kind) String() string {
	switch k {
	case KindTx:
		return "tx"
	case KindSignature:
		return "signature"
	case KindRaft:
		return "raft"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Entry sizes (see docs/ledger-format.md for the layout).
const (
	// MaxEntrySize bounds the encoded size of one entry, frame length field
	// included. Decoders reject larger frames before allocating for them.
	MaxEntrySize = 64 << 20
	// MinEntrySize is the encoded size of an entry with empty Public and
	// Private parts.
	MinEntrySize = frameLenSize + fixedBodySize + trailerSize

	frameLenSize  = 4
	fixedBodySize = 1 + 1 + 8 + 8 + 4 + 4 // version, kind, view, seqno, pub_len, priv_len
	trailerSize   = 32 + 32 + 4           // ce_digest, claims_digest, crc32c

	offVersion = 4
	offKind    = 5
	offView    = 6
	offSeqno   = 14
	offPubLen  = 22
	offPublic  = 26
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry is one ledger entry: a transaction or a signature transaction.
type Entry struct {
	Kind  Kind
	View  ids.View
	Seqno ids.Seqno
	// Public is, for KindTx, the encoded public write set; for
	// KindSignature, an encoded SignatureRecord; for KindRaft, the raft
	// entry type byte and its data.
	Public []byte
	// Private is the AES-256-GCM ciphertext, tag included, of the private
	// write set; empty if there is none. The caller encrypts, authenticating
	// AppendAAD.
	Private []byte
	// CommitEvidenceDigest is SHA-256 of the tx's commit evidence.
	CommitEvidenceDigest [32]byte
	// ClaimsDigest binds an application claim; all zeros when none.
	ClaimsDigest [32]byte
}

// EncodedSize is the number of bytes AppendBinary appends.
func (e *Entry) EncodedSize() int {
	return MinEntrySize + len(e.Public) + len(e.Private)
}

// Validate reports whether e can be appended to a ledger: a known kind, a
// view and seqno of at least 1, an encoded size within MaxEntrySize, and,
// for KindRaft, the rules of raftRule.
func (e *Entry) Validate() error {
	switch {
	case !e.Kind.valid():
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidEntry, e.Kind)
	case e.View == 0:
		return fmt.Errorf("%w: view 0", ErrInvalidEntry)
	case e.Seqno == 0:
		return fmt.Errorf("%w: seqno 0", ErrInvalidEntry)
	case len(e.Public) > MaxEntrySize || len(e.Private) > MaxEntrySize || e.EncodedSize() > MaxEntrySize:
		return fmt.Errorf("%w: encoded size %d exceeds %d bytes", ErrInvalidEntry, e.EncodedSize(), MaxEntrySize)
	}
	if reason := e.raftRule(); reason != "" {
		return fmt.Errorf("%w: %s", ErrInvalidEntry, reason)
	}
	return nil
}

// raftRule returns why e breaks the rules of a KindRaft entry, or "" if it
// keeps them (or is of another kind): Public is a known raft entry type byte
// (RaftEmpty with nothing after it, or RaftConfChangeV2), Private is empty,
// both digests are all zeros.
func (e *Entry) raftRule() string {
	switch {
	case e.Kind != KindRaft:
		return ""
	case len(e.Public) == 0:
		return "raft entry without a type byte"
	case e.Public[0] != RaftEmpty && e.Public[0] != RaftConfChangeV2:
		return fmt.Sprintf("raft entry of unknown type %d", e.Public[0])
	case e.Public[0] == RaftEmpty && len(e.Public) != 1:
		return fmt.Sprintf("empty raft entry with %d data bytes", len(e.Public)-1)
	case len(e.Private) != 0:
		return "raft entry with a private part"
	case e.CommitEvidenceDigest != [32]byte{} || e.ClaimsDigest != [32]byte{}:
		return "raft entry with a nonzero digest"
	}
	return ""
}

// appendHeader appends version ‖ kind ‖ view ‖ seqno ‖ pub_len.
func (e *Entry) appendHeader(dst []byte) []byte {
	dst = append(dst, FormatVersion, byte(e.Kind))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.View))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Seqno))
	return binary.BigEndian.AppendUint32(dst, uint32(len(e.Public)))
}

// AppendBinary appends the whole framed entry to dst and returns the
// extended slice. It does not validate e (see Validate): an entry larger
// than MaxEntrySize encodes but will not decode. It panics only if a length
// cannot be represented in the format's 32-bit fields, a programmer error.
func (e *Entry) AppendBinary(dst []byte) []byte {
	size := e.EncodedSize()
	if size-frameLenSize > math.MaxUint32 {
		panic("ledger: entry too large to encode")
	}
	start := len(dst)
	dst = slices.Grow(dst, size)
	dst = binary.BigEndian.AppendUint32(dst, uint32(size-frameLenSize))
	dst = e.appendHeader(dst)
	dst = append(dst, e.Public...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(e.Private)))
	dst = append(dst, e.Private...)
	dst = append(dst, e.CommitEvidenceDigest[:]...)
	dst = append(dst, e.ClaimsDigest[:]...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// AppendAAD appends the additional authenticated data of the private part's
// GCM tag: version ‖ kind ‖ view ‖ seqno ‖ pub_len ‖ public ‖ ce_digest ‖
// claims_digest. That is every field of the entry except the frame length,
// the private length, the private bytes and the checksum, so a ciphertext
// cannot be moved to another entry or paired with another public part.
func (e *Entry) AppendAAD(dst []byte) []byte {
	dst = e.appendHeader(dst)
	dst = append(dst, e.Public...)
	dst = append(dst, e.CommitEvidenceDigest[:]...)
	return append(dst, e.ClaimsDigest[:]...)
}

// WriteSetDigest is SHA-256 of the entry body: version ‖ kind ‖ view ‖ seqno
// ‖ pub_len ‖ public ‖ priv_len ‖ private. It is the first component of the
// Merkle leaf; it covers the ciphertext, so receipts can be checked without
// the ledger secret.
func (e *Entry) WriteSetDigest() [32]byte {
	var hdr [fixedBodySize]byte
	h := sha256.New()
	h.Write(e.appendHeader(hdr[:0]))
	h.Write(e.Public)
	h.Write(binary.BigEndian.AppendUint32(hdr[:0], uint32(len(e.Private))))
	h.Write(e.Private)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Leaf returns the Merkle leaf components WriteSetDigest ‖
// CommitEvidenceDigest ‖ ClaimsDigest; the tree hashes them as an RFC 9162
// leaf (SHA-256 of 0x00 ‖ Leaf).
func (e *Entry) Leaf() [96]byte {
	var l [96]byte
	d := e.WriteSetDigest()
	copy(l[:32], d[:])
	copy(l[32:64], e.CommitEvidenceDigest[:])
	copy(l[64:], e.ClaimsDigest[:])
	return l
}

// DecodeEntry decodes the entry at the start of b and returns it with the
// number of bytes it occupies. Public and Private alias b (nil when empty).
// Errors wrap ErrTruncated when b ends before the entry its first bytes
// announce does, or ErrCorrupt when the bytes cannot be an entry: frame
// length outside [MinEntrySize, MaxEntrySize], checksum mismatch, unknown
// version or kind, zero view or seqno, inconsistent inner lengths. The frame
// length is checked before completeness, so a zero-filled region is
// ErrCorrupt and a garbage length never causes a large read. It never
// panics.
func DecodeEntry(b []byte) (Entry, int, error) {
	if len(b) < frameLenSize {
		return Entry{}, 0, &decodeError{ErrTruncated, fmt.Sprintf("%d bytes, need %d for the frame length", len(b), frameLenSize)}
	}
	frameLen := binary.BigEndian.Uint32(b)
	if frameLen < MinEntrySize-frameLenSize || frameLen > MaxEntrySize-frameLenSize {
		return Entry{}, 0, corruptf("frame length %d outside [%d, %d]", frameLen, MinEntrySize-frameLenSize, MaxEntrySize-frameLenSize)
	}
	n := frameLenSize + int(frameLen)
	if len(b) < n {
		return Entry{}, 0, &decodeError{ErrTruncated, fmt.Sprintf("%d bytes, frame needs %d", len(b), n)}
	}
	b = b[:n]
	if want, got := binary.BigEndian.Uint32(b[n-4:]), crc32.Checksum(b[:n-4], castagnoli); want != got {
		return Entry{}, 0, corruptf("checksum mismatch: stored %08x, computed %08x", want, got)
	}
	// The checksum matched, so what follows only fails for bytes written by
	// a buggy or foreign encoder (or a 2^-32 accident).
	if b[offVersion] != FormatVersion {
		return Entry{}, 0, corruptf("unsupported format version %d", b[offVersion])
	}
	e := Entry{
		Kind:  Kind(b[offKind]),
		View:  ids.View(binary.BigEndian.Uint64(b[offView:])),
		Seqno: ids.Seqno(binary.BigEndian.Uint64(b[offSeqno:])),
	}
	if !e.Kind.valid() {
		return Entry{}, 0, corruptf("unknown kind %d", b[offKind])
	}
	if e.View == 0 || e.Seqno == 0 {
		return Entry{}, 0, corruptf("zero view or seqno")
	}
	pubLen := uint64(binary.BigEndian.Uint32(b[offPubLen:]))
	if pubLen > uint64(n-MinEntrySize) {
		return Entry{}, 0, corruptf("public length %d exceeds frame", pubLen)
	}
	privAt := offPublic + int(pubLen)
	privLen := uint64(binary.BigEndian.Uint32(b[privAt:]))
	if uint64(MinEntrySize)+pubLen+privLen != uint64(n) {
		return Entry{}, 0, corruptf("public length %d and private length %d do not fill the %d-byte frame", pubLen, privLen, n)
	}
	if pubLen > 0 {
		e.Public = b[offPublic:privAt:privAt]
	}
	privEnd := privAt + 4 + int(privLen)
	if privLen > 0 {
		e.Private = b[privAt+4 : privEnd : privEnd]
	}
	copy(e.CommitEvidenceDigest[:], b[privEnd:])
	copy(e.ClaimsDigest[:], b[privEnd+32:])
	if reason := e.raftRule(); reason != "" {
		return Entry{}, 0, corruptf("%s", reason)
	}
	return e, n, nil
}
