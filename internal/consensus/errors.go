package consensus

import (
	"errors"
	"fmt"
)

var (
	// ErrBadEntry reports a raft entry that has no ledger form, or a ledger
	// entry that has no raft form (see ToLedger and ToRaft). Every
	// *EntryError matches it.
	ErrBadEntry = errors.New("consensus: entry does not convert")
	// ErrOutOfOrder reports an Append that would leave a gap in the log or
	// whose entries are not consecutive or lower the term, and a
	// SetHardState that would lower the term or commit index or commit past
	// the end of the log (the Ready's entries must be appended first).
	// Nothing was written.
	ErrOutOfOrder = errors.New("consensus: out of order")
	// ErrFailed marks every error returned after a write to the ledger or
	// the HardState file failed (a *ledger.Ledger poisoned, a truncation
	// refused because it would cut committed entries — a broken leader): the
	// Storage no longer knows what is durable and refuses all work. The
	// error also wraps the original cause. Reopen the ledger and the Storage
	// to recover from what is on disk.
	ErrFailed = errors.New("consensus: storage failed")
	// ErrLedgerBehind reports, at OpenStorage, a ledger that ends before
	// the HardState's commit index, or that holds appended entries that are
	// not durable: acknowledged entries were lost (a disk that lies about
	// fsync, or a ledger directory restored from an older copy). The node
	// must not start; see *LedgerBehindError.
	ErrLedgerBehind = errors.New("consensus: ledger is behind the raft state")
	// ErrBadState reports a HardState file that does not decode (wrong
	// size, version or checksum).
	ErrBadState = errors.New("consensus: bad HardState file")
	// ErrBootstrap reports a Bootstrap of a non-empty Storage or with an
	// invalid set of voters.
	ErrBootstrap = errors.New("consensus: cannot bootstrap")
	// ErrBadConfChange reports a configuration change Coco cannot apply:
	// a committed one in the ledger that does not apply to the
	// configuration before it, or one Replica.ProposeConfChange refuses
	// (not a single simple change, or not applicable to the current
	// configuration).
	ErrBadConfChange = errors.New("consensus: configuration change does not apply")
)

// EntryError says which entry failed to convert between its raft and
// ledger forms, and why.
type EntryError struct {
	Index  uint64 // raft index = ledger seqno
	Term   uint64 // raft term = ledger view
	Reason string // for humans
	Err    error  // underlying error (a ledger decode error, a protobuf error); may be nil
}

func (e *EntryError) Error() string {
	s := fmt.Sprintf("consensus: entry %d (term %d) does not convert: %s", e.Index, e.Term, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap makes every EntryError match ErrBadEntry, and whatever Err matches.
func (e *EntryError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrBadEntry}
	}
	return []error{ErrBadEntry, e.Err}
}

// LedgerBehindError is the ErrLedgerBehind found at OpenStorage.
type LedgerBehindError struct {
	Commit  uint64 // commit index in the HardState file
	Durable uint64 // last durable seqno of the ledger
	Last    uint64 // last appended seqno of the ledger (> Durable if unsynced)
}

func (e *LedgerBehindError) Error() string {
	if e.Last != e.Durable {
		return fmt.Sprintf("consensus: ledger holds unsynced entries %d…%d: the Storage must be its only writer", e.Durable+1, e.Last)
	}
	return fmt.Sprintf("consensus: ledger ends at seqno %d but the raft commit index is %d: committed entries were lost", e.Durable, e.Commit)
}

func (e *LedgerBehindError) Unwrap() error { return ErrLedgerBehind }
