package ledger

import (
	"errors"
	"fmt"

	"github.com/cocoledger/coco/internal/ids"
)

var (
	// ErrTruncated reports bytes that end before the entry they start is
	// complete: the signature of a torn write.
	ErrTruncated = errors.New("ledger: truncated entry")
	// ErrCorrupt reports bytes that are not a valid entry (bad checksum,
	// length, version or kind) or a ledger directory that breaks the format's
	// rules (gap, misnamed file, chunk not ending on a signature). Every
	// *CorruptError matches it.
	ErrCorrupt = errors.New("ledger: corrupt")
	// ErrInvalidEntry reports an Entry that cannot be appended or encoded
	// (unknown kind, zero view or seqno, too large).
	ErrInvalidEntry = errors.New("ledger: invalid entry")
	// ErrOutOfOrder reports an Append whose seqno is not LastSeqno()+1 or
	// whose view is lower than the previous entry's.
	ErrOutOfOrder = errors.New("ledger: entry out of order")
	// ErrNotFound reports a Read or Scan of a seqno that is not durable in
	// the ledger (never appended, not yet synced, or truncated).
	ErrNotFound = errors.New("ledger: no such durable entry")
	// ErrCommittedTruncation reports a Truncate that would drop committed
	// entries.
	ErrCommittedTruncation = errors.New("ledger: cannot truncate committed entries")
	// ErrPoisoned marks every error returned after a write, fsync, rename,
	// remove or truncate failed: the on-disk state is unknown, so the ledger
	// refuses all further work and must be closed and reopened (which
	// recovers from the files). The error also wraps the original cause.
	ErrPoisoned = errors.New("ledger: poisoned by an earlier I/O failure")
	// ErrClosed reports use of a closed Ledger.
	ErrClosed = errors.New("ledger: closed")
	// ErrBadSignatureRecord reports a SignatureRecord that does not encode
	// or decode under the format's rules.
	ErrBadSignatureRecord = errors.New("ledger: bad signature record")
)

// CorruptError locates damage in a ledger directory: a file, the byte offset
// at which the problem starts, and the seqno the entry there should have had.
type CorruptError struct {
	File   string    // path of the file (dir joined with the file name)
	Offset int64     // byte offset in File where the damage starts
	Seqno  ids.Seqno // seqno expected at Offset; 0 when unknown
	Reason string    // what is wrong, for humans
	Err    error     // underlying decode error (wraps ErrCorrupt or ErrTruncated); may be nil
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("ledger: corrupt ledger file %s at offset %d (seqno %d): %s", e.File, e.Offset, e.Seqno, e.Reason)
}

// Unwrap makes every CorruptError match ErrCorrupt, and also whatever its
// decode error matches (ErrTruncated for a torn entry).
func (e *CorruptError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrCorrupt}
	}
	return []error{ErrCorrupt, e.Err}
}

// decodeError is what DecodeEntry returns: a sentinel plus a reason.
type decodeError struct {
	sentinel error
	reason   string
}

func (e *decodeError) Error() string { return e.sentinel.Error() + ": " + e.reason }
func (e *decodeError) Unwrap() error { return e.sentinel }

func corruptf(format string, args ...any) error {
	return &decodeError{sentinel: ErrCorrupt, reason: fmt.Sprintf(format, args...)}
}

// reasonOf returns the human part of a decode error.
func reasonOf(err error) string {
	var de *decodeError
	if errors.As(err, &de) {
		if de.sentinel == ErrTruncated {
			return "truncated entry: " + de.reason
		}
		return de.reason
	}
	return err.Error()
}
