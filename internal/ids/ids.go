package ids

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// View is the raft term in which a transaction was executed.
type View uint64

// Seqno is a transaction's position in the ledger: 1, 2, 3 … with no gaps.
type Seqno uint64

// TxID names one transaction: the view it executed in and its seqno.
type TxID struct {
	View  View
	Seqno Seqno
}

// ErrBadTxID reports a transaction id that is not of the form "view.seqno".
var ErrBadTxID = errors.New("ids: bad transaction id")

// String formats the id as "view.seqno".
func (t TxID) String() string {
	var buf [41]byte
	b, _ := t.AppendText(buf[:0])
	return string(b)
}

// AppendText appends the text form of t, "<view>.<seqno>", to b
// (encoding.TextAppender).
func (t TxID) AppendText(b []byte) ([]byte, error) {
	b = strconv.AppendUint(b, uint64(t.View), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(t.Seqno), 10), nil
}

// IsZero reports whether t is the zero TxID.
func (t TxID) IsZero() bool { return t == TxID{} }

// ParseTxID parses "view.seqno" where both are decimal integers ≥ 1 without
// sign, leading zeros or surrounding space.
func ParseTxID(s string) (TxID, error) {
	v, q, ok := strings.Cut(s, ".")
	if !ok {
		return TxID{}, fmt.Errorf("%w %q: want \"<view>.<seqno>\", e.g. \"2.15\"", ErrBadTxID, s)
	}
	view, err := parsePositive(v)
	if err != nil {
		return TxID{}, fmt.Errorf("%w %q: view: %v", ErrBadTxID, s, err)
	}
	seqno, err := parsePositive(q)
	if err != nil {
		return TxID{}, fmt.Errorf("%w %q: seqno: %v", ErrBadTxID, s, err)
	}
	return TxID{View: View(view), Seqno: Seqno(seqno)}, nil
}

func parsePositive(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal digit", s[i])
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("out of range")
	}
	if n == 0 {
		return 0, errors.New("must be at least 1")
	}
	return n, nil
}

// Compare orders TxIDs by seqno, then view.
func (t TxID) Compare(o TxID) int {
	switch {
	case t.Seqno < o.Seqno:
		return -1
	case t.Seqno > o.Seqno:
		return 1
	case t.View < o.View:
		return -1
	case t.View > o.View:
		return 1
	}
	return 0
}

// NodeID identifies a node: lowercase hex SHA-256 of its DER public key.
type NodeID string

// MemberID identifies a consortium member: lowercase hex SHA-256 of its DER cert.
type MemberID string

// UserID identifies an application user: lowercase hex SHA-256 of its DER cert.
type UserID string

// Fingerprint returns the lowercase hex SHA-256 of der, the form of every
// certificate- or key-derived id.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// TxStatus is the commit status of a transaction id as a node sees it.
type TxStatus string

// Transaction statuses, as CCF defines them. Unknown: the node has not seen
// the TxID (yet). Pending: executed, not yet committed. Committed: covered by
// a committed signature; final. Invalid: final, the transaction will never
// commit.
const (
	StatusUnknown   TxStatus = "Unknown"
	StatusPending   TxStatus = "Pending"
	StatusCommitted TxStatus = "Committed"
	StatusInvalid   TxStatus = "Invalid"
)
