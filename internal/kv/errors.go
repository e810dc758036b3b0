package kv

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cocoledger/coco/internal/ids"
)

// Sentinel errors. Every error returned by this package matches one of them
// with errors.Is; the typed errors below carry the details.
var (
	// ErrConflict: a transaction's reads changed between its snapshot and its
	// commit. Nothing was applied; re-run the handler on a fresh Tx.
	ErrConflict = errors.New("kv: conflict")
	// ErrTxDone: Commit was called on a Tx that was already committed or
	// rejected; a Tx commits at most once.
	ErrTxDone = errors.New("kv: transaction already finished")
	// ErrForeignTx: the Tx was begun on a different Store.
	ErrForeignTx = errors.New("kv: transaction belongs to another store")
	// ErrSeqno: Apply was given a seqno other than Seqno()+1, or Rollback
	// one beyond Seqno().
	ErrSeqno = errors.New("kv: out-of-order seqno")
	// ErrCompacted: Rollback was asked for a state older than the
	// compaction point, which the store no longer holds (see Compact).
	ErrCompacted = errors.New("kv: state compacted")
	// ErrRolledBack: a transaction's snapshot was dropped by Rollback. Nothing
	// was applied. Retry does not re-run it: a rollback means the node's
	// uncommitted entries were replaced, so the caller, not the store,
	// decides what to do with the request.
	ErrRolledBack = errors.New("kv: snapshot rolled back")
	// ErrInvalidMapName: see ValidateMapName.
	ErrInvalidMapName = errors.New("kv: invalid map name")
	// ErrKeyTooLarge: a key exceeds MaxKeyLen.
	ErrKeyTooLarge = errors.New("kv: key too large")
	// ErrValueTooLarge: a value exceeds MaxValueLen.
	ErrValueTooLarge = errors.New("kv: value too large")
	// ErrInvalidWriteSet: a WriteSet breaks its invariants (see WriteSet).
	ErrInvalidWriteSet = errors.New("kv: invalid write set")
	// ErrOverlap: Merge was given two write sets that write the same key.
	ErrOverlap = errors.New("kv: write sets overlap")
	// ErrMalformed: DecodeWriteSet was given bytes that are not a canonical
	// encoding; the error is a *DecodeError.
	ErrMalformed = errors.New("kv: malformed write set")
)

// ConflictError is the ErrConflict returned by Commit. It names the first
// read found stale.
type ConflictError struct {
	Map       MapName
	ReadSeqno ids.Seqno // the transaction's snapshot

	// Range is false for a point read of Key, which had version Seen at the
	// snapshot and has version Now (0 means absent).
	// Range is true for a range read of [Start, End) (End nil: unbounded).
	// Then Key is a key in the range written after the snapshot, at version
	// Now, or nil when the range only lost keys: it held SeenCount keys at
	// the snapshot and holds NowCount.
	Range               bool
	Key                 []byte
	Seen, Now           ids.Seqno
	Start, End          []byte
	SeenCount, NowCount int
}

func (e *ConflictError) Error() string {
	if !e.Range {
		return fmt.Sprintf("kv: conflict: map %q key %s was %s at snapshot %d and is now %s",
			e.Map, quoteKey(e.Key), version(e.Seen), e.ReadSeqno, version(e.Now))
	}
	end := "end"
	if e.End != nil {
		end = quoteKey(e.End)
	}
	if e.Key != nil {
		return fmt.Sprintf("kv: conflict: map %q range [%s, %s) read at snapshot %d changed: key %s written at version %d",
			e.Map, quoteKey(e.Start), end, e.ReadSeqno, quoteKey(e.Key), e.Now)
	}
	return fmt.Sprintf("kv: conflict: map %q range [%s, %s) read at snapshot %d changed: it held %d keys and now holds %d",
		e.Map, quoteKey(e.Start), end, e.ReadSeqno, e.SeenCount, e.NowCount)
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// SeqnoError is the ErrSeqno returned by Apply.
type SeqnoError struct {
	Got, Want ids.Seqno
}

func (e *SeqnoError) Error() string {
	return fmt.Sprintf("kv: out-of-order seqno: got %d, want %d (the store is at %d)", e.Got, e.Want, e.Want-1)
}

// Is makes errors.Is(err, ErrSeqno) hold.
func (e *SeqnoError) Is(target error) bool { return target == ErrSeqno }

// RollbackError is the error returned by Rollback when the store does not
// hold the state at To: it matches ErrCompacted when To is below Compacted
// (the highest seqno given to Compact), ErrSeqno when To is beyond Seqno
// (the store's latest seqno).
type RollbackError struct {
	To, Seqno, Compacted ids.Seqno
}

func (e *RollbackError) Error() string {
	if e.To > e.Seqno {
		return fmt.Sprintf("kv: cannot roll back to seqno %d: the store is at %d", e.To, e.Seqno)
	}
	return fmt.Sprintf("kv: cannot roll back to seqno %d: compacted up to %d", e.To, e.Compacted)
}

// Is makes errors.Is(err, ErrSeqno) or errors.Is(err, ErrCompacted) hold.
func (e *RollbackError) Is(target error) bool {
	if e.To > e.Seqno {
		return target == ErrSeqno
	}
	return target == ErrCompacted
}

// RolledBackError is the ErrRolledBack returned by Commit for a transaction
// whose snapshot, at ReadSeqno, was dropped by Rollback.
type RolledBackError struct {
	ReadSeqno ids.Seqno
}

func (e *RolledBackError) Error() string {
	return fmt.Sprintf("kv: transaction's snapshot at seqno %d was rolled back; nothing applied", e.ReadSeqno)
}

// Is makes errors.Is(err, ErrRolledBack) hold.
func (e *RolledBackError) Is(target error) bool { return target == ErrRolledBack }

// DecodeError is the ErrMalformed returned by DecodeWriteSet: what is wrong
// (Err) and the input offset where it was found.
type DecodeError struct {
	Offset int
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("kv: malformed write set at byte %d: %v", e.Offset, e.Err)
}

// Unwrap exposes both ErrMalformed and the specific cause, which may itself
// be a sentinel such as ErrKeyTooLarge.
func (e *DecodeError) Unwrap() []error { return []error{ErrMalformed, e.Err} }

func version(v ids.Seqno) string {
	if v == 0 {
		return "absent"
	}
	return "version " + strconv.FormatUint(uint64(v), 10)
}

// maxQuotedKey bounds how much of a key an error message shows: keys may be
// 64 KiB and messages end up in logs and HTTP responses.
const maxQuotedKey = 64

func quoteKey(k []byte) string {
	if len(k) > maxQuotedKey {
		return strconv.Quote(string(k[:maxQuotedKey])) + fmt.Sprintf("…(%d bytes)", len(k))
	}
	return strconv.Quote(string(k))
}
