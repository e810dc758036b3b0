package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/confchange"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/vfs"
)

const (
	dirPerm  = 0o750
	filePerm = 0o640
)

// Storage implements raft.Storage over a ledger.Ledger plus a durable
// HardState file. See the package documentation for its invariants and
// concurrency contract.
type Storage struct {
	fs   vfs.FS
	path string // of the HardState file
	l    *ledger.Ledger

	// wmu serialises the writers: Append, SetHardState, Bootstrap. They do
	// their I/O holding only wmu, and take mu to publish.
	wmu sync.Mutex

	// mu guards the index below. Readers hold it (shared) across their
	// ledger reads, so a truncation, which cuts the index before it cuts
	// the ledger, never removes an entry under a reader.
	mu    sync.RWMutex
	last  uint64           // last durable index (= ledger.DurableSeqno)
	runs  []termRun        // terms of entries 1…last, runs[i].first ascending
	confs []confEntry      // the configuration changes among entries 1…last
	hs    raftpb.HardState // the latest, as SetHardState was given it
	// recent holds the last entries appended (at most 2×recentEntries),
	// decoded, ending at last: a node applies entries soon after they are
	// written and reads them from here instead of from the files.
	recent []*ledger.Entry
	// saved is the HardState in the file. It differs from hs only in
	// Commit: see SetHardState.
	saved raftpb.HardState
	err   error // sticky: set when a write failed (wraps ErrFailed)
}

// termRun says that the entries from index first up to the next run's
// first (or last) have term term.
type termRun struct{ first, term uint64 }

// confEntry is a configuration change entry of the log, unmarshalled.
type confEntry struct {
	index uint64
	cc    raftpb.ConfChangeV2
}

var _ raft.Storage = (*Storage)(nil)

// errFull stops a ledger read when Entries has reached maxSize.
var errFull = errors.New("consensus: maxSize reached")

// OpenStorage opens the raft storage of a node: the ledger l, which must
// be open and which the Storage then owns for writing (nothing else may
// Append, Sync or Truncate it; SetCommitted and reads are fine), and the
// HardState file StateFileName in dataDir (created with dataDir if
// missing: an empty HardState). It reads the ledger once to index the
// terms of its entries and its configuration changes.
//
// A ledger that ends before the HardState's commit index, or holds
// unsynced entries, is a *LedgerBehindError (ErrLedgerBehind): entries
// reported durable were lost, and the node must not start.
func OpenStorage(fsys vfs.FS, dataDir string, l *ledger.Ledger) (*Storage, error) {
	if err := vfs.MkdirAllSync(fsys, dataDir, dirPerm); err != nil {
		return nil, fmt.Errorf("consensus: create %s: %w", dataDir, err)
	}
	s := &Storage{fs: fsys, path: filepath.Join(dataDir, StateFileName), l: l}
	b, err := vfs.ReadFile(fsys, s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("consensus: read %s: %w", s.path, err)
	default:
		if s.hs, err = decodeHardState(b); err != nil {
			return nil, fmt.Errorf("%s: %w", s.path, err)
		}
		s.saved = s.hs
	}
	durable, last := uint64(l.DurableSeqno()), uint64(l.LastSeqno())
	if last != durable || s.hs.Commit > durable {
		return nil, &LedgerBehindError{Commit: s.hs.Commit, Durable: durable, Last: last}
	}
	err = l.Scan(1, s.index)
	if err != nil {
		return nil, fmt.Errorf("consensus: index ledger: %w", err)
	}
	return s, nil
}

// index adds the durable entry e, which follows s.last, to the index.
func (s *Storage) index(e *ledger.Entry) error {
	if len(s.runs) == 0 || s.runs[len(s.runs)-1].term != uint64(e.View) {
		s.runs = append(s.runs, termRun{first: uint64(e.Seqno), term: uint64(e.View)})
	}
	s.last = uint64(e.Seqno)
	if e.Kind == ledger.KindRaft && e.Public[0] == ledger.RaftConfChangeV2 {
		var cc raftpb.ConfChangeV2
		if err := cc.Unmarshal(e.Public[1:]); err != nil {
			return &EntryError{Index: uint64(e.Seqno), Term: uint64(e.View), Reason: "configuration change does not unmarshal", Err: err}
		}
		s.confs = append(s.confs, confEntry{index: uint64(e.Seqno), cc: cc})
	}
	return nil
}

// recentEntries is how many appended entries Recent keeps at least.
const recentEntries = 8192

// Recent returns the durable entry at index i if it is among the last
// appended ones (nil otherwise; read the ledger then). The entry is
// shared: the caller must not modify it.
func (s *Storage) Recent(i uint64) *ledger.Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if n := uint64(len(s.recent)); i <= s.last && i+n > s.last {
		return s.recent[n-1-(s.last-i)]
	}
	return nil
}

// cut drops the entries after index after from the index.
func (s *Storage) cut(after uint64) {
	if drop := s.last - after; drop >= uint64(len(s.recent)) {
		s.recent = nil
	} else {
		s.recent = s.recent[:uint64(len(s.recent))-drop]
	}
	s.last = after
	s.runs = s.runs[:sort.Search(len(s.runs), func(i int) bool { return s.runs[i].first > after })]
	s.confs = s.confs[:sort.Search(len(s.confs), func(i int) bool { return s.confs[i].index > after })]
}

// termAt returns the term of entry i, 1 ≤ i ≤ s.last.
func (s *Storage) termAt(i uint64) uint64 {
	k := sort.Search(len(s.runs), func(k int) bool { return s.runs[k].first > i })
	return s.runs[k-1].term
}

// InitialState returns the saved HardState and the configuration in force
// after the entries up to its commit index: the configuration changes among
// them, applied in order to the empty configuration. The RawNode must
// therefore be started with Config.Applied = HardState.Commit: everything
// up to the commit index counts as applied (the node rebuilds its state
// from the ledger), and raft hands out only later committed entries, whose
// configuration changes the node applies with RawNode.ApplyConfChange.
func (s *Storage) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.err != nil {
		return raftpb.HardState{}, raftpb.ConfState{}, s.err
	}
	cs, err := confStateAt(s.confs, s.hs.Commit)
	return s.hs, cs, err
}

// confStateAt replays the configuration changes at or below index with
// raft's own confchange package, as RawNode.ApplyConfChange applied them.
func confStateAt(confs []confEntry, index uint64) (raftpb.ConfState, error) {
	trk := tracker.MakeProgressTracker(1, 0)
	for _, c := range confs {
		if c.index > index {
			break
		}
		if err := applyConfChange(&trk, c.index, c.cc); err != nil {
			return raftpb.ConfState{}, fmt.Errorf("%w: entry %d: %w", ErrBadConfChange, c.index, err)
		}
	}
	return trk.ConfState(), nil
}

// applyConfChange applies cc, the configuration change at index, to trk
// as RawNode.ApplyConfChange does (raft's confchange package), except
// that it returns the error raft panics with.
func applyConfChange(trk *tracker.ProgressTracker, index uint64, cc raftpb.ConfChangeV2) error {
	chg := confchange.Changer{Tracker: *trk, LastIndex: index}
	var (
		cfg  tracker.Config
		prog tracker.ProgressMap
		err  error
	)
	if cc.LeaveJoint() {
		cfg, prog, err = chg.LeaveJoint()
	} else if autoLeave, ok := cc.EnterJoint(); ok {
		cfg, prog, err = chg.EnterJoint(autoLeave, cc.Changes...)
	} else {
		cfg, prog, err = chg.Simple(cc.Changes...)
	}
	if err != nil {
		return err
	}
	trk.Config, trk.Progress = cfg, prog
	return nil
}

// HardState returns the latest HardState (its Commit may be ahead of the
// saved one; see SetHardState).
func (s *Storage) HardState() raftpb.HardState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hs
}

// Entries returns the entries [lo, hi), as raft.Storage specifies: at least
// one if lo < hi, then as many as fit in maxSize bytes (raftpb.Entry.Size
// summed, as raft's MemoryStorage counts them). lo = 0 is raft.ErrCompacted
// (index 0 is the dummy entry before the log); hi beyond LastIndex()+1, or
// any range of an empty log, is raft.ErrUnavailable. The raft sentinels are
// returned unwrapped: raft compares them with ==. The entries' Data are
// the ledger's bytes exactly as stored; the slice is the caller's.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]raftpb.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.err != nil:
		return nil, s.err
	case lo == 0:
		return nil, raft.ErrCompacted
	case hi > s.last+1 || s.last == 0:
		return nil, raft.ErrUnavailable
	case lo > hi:
		return nil, fmt.Errorf("consensus: Entries(%d, %d): lo > hi", lo, hi)
	case lo == hi:
		return []raftpb.Entry{}, nil
	}
	ents := make([]raftpb.Entry, 0, min(hi-lo, 64))
	var size uint64
	err := s.l.ReadRange(ids.Seqno(lo), ids.Seqno(hi-1), func(e *ledger.Entry, enc []byte) error {
		r, err := toRaft(e, enc)
		if err != nil {
			return err
		}
		size += uint64(r.Size())
		if len(ents) > 0 && size > maxSize {
			return errFull
		}
		ents = append(ents, r)
		return nil
	})
	if err != nil && err != errFull {
		return nil, fmt.Errorf("consensus: read entries %d…%d: %w", lo, hi-1, err)
	}
	return ents, nil
}

// Term returns the term of entry i from an in-memory index: 0 for i = 0
// (the dummy entry before the log), raft.ErrUnavailable beyond LastIndex.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.err != nil:
		return 0, s.err
	case i == 0:
		return 0, nil
	case i > s.last:
		return 0, raft.ErrUnavailable
	}
	return s.termAt(i), nil
}

// LastIndex returns the index of the last durable entry (0 if none): the
// ledger's DurableSeqno.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last, s.err
}

// FirstIndex returns 1: there are no snapshots yet, so the whole log, from
// the first ledger entry on, is available.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return 1, s.err
}

// Snapshot returns an empty snapshot (index 0): Coco has no snapshots yet.
// Raft asks for one only when an entry it needs is before FirstIndex, which
// never happens while FirstIndex is 1.
func (s *Storage) Snapshot() (raftpb.Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return raftpb.Snapshot{}, s.err
}

// Append makes a Ready's entries durable: entries[0].Index may be at most
// LastIndex()+1; entries at or below LastIndex conflict with the log's
// suffix, which is dropped first (ledger.Truncate, durable on return). The
// entries are converted (ToLedger), appended to the ledger and synced once;
// they are readable when Append returns. Invalid input — entries that do
// not convert, are not consecutive, leave a gap or lower the term — is an
// error before anything is written. A failed write or a refused truncation
// (ledger.ErrCommittedTruncation: entries at or below the HardState's
// commit index or the ledger's committed seqno would be overwritten, a
// broken leader) fails the Storage for good (ErrFailed).
func (s *Storage) Append(entries []raftpb.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.appendLocked(entries)
}

func (s *Storage) appendLocked(entries []raftpb.Entry) error {
	if s.err != nil {
		return s.err
	}
	first := entries[0].Index
	if first == 0 || first > s.last+1 {
		return fmt.Errorf("%w: append at index %d, log ends at %d", ErrOutOfOrder, first, s.last)
	}
	prevTerm := uint64(0)
	if first > 1 {
		prevTerm = s.termAt(first - 1)
	}
	les := make([]*ledger.Entry, len(entries))
	for i, r := range entries {
		if r.Index != first+uint64(i) {
			return fmt.Errorf("%w: entry %d of the batch has index %d, want %d", ErrOutOfOrder, i, r.Index, first+uint64(i))
		}
		if r.Term < prevTerm {
			return fmt.Errorf("%w: entry %d has term %d after term %d", ErrOutOfOrder, r.Index, r.Term, prevTerm)
		}
		prevTerm = r.Term
		e, err := ToLedger(r)
		if err != nil {
			return err
		}
		les[i] = e
	}
	if first <= s.hs.Commit {
		// Raft never rewrites committed entries; a leader that makes it
		// try is broken. The ledger refuses only what it knows committed
		// (signatures), so check raft's own commit index too.
		return s.fail(fmt.Errorf("%w: overwrite from index %d, but raft committed up to %d", ledger.ErrCommittedTruncation, first, s.hs.Commit))
	}
	if first <= s.last {
		// Cut the index first: readers never reach into what is truncated.
		s.mu.Lock()
		s.cut(first - 1)
		s.mu.Unlock()
		if err := s.l.Truncate(ids.Seqno(first - 1)); err != nil {
			return s.fail(fmt.Errorf("truncate after %d: %w", first-1, err))
		}
	}
	for _, e := range les {
		if err := s.l.Append(e); err != nil {
			return s.fail(fmt.Errorf("append %d: %w", e.Seqno, err))
		}
	}
	if _, err := s.l.Sync(); err != nil {
		return s.fail(fmt.Errorf("sync: %w", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range les {
		if err := s.index(e); err != nil {
			// ToLedger checked that configuration changes unmarshal.
			return s.failLocked(err)
		}
	}
	s.recent = append(s.recent, les...)
	if len(s.recent) > 2*recentEntries {
		s.recent = append([]*ledger.Entry(nil), s.recent[len(s.recent)-recentEntries:]...)
	}
	return nil
}

// SetHardState records hs, making it durable (vfs.WriteFileAtomic: the
// file holds the old or the new state after a crash, never a mix) before it
// returns when its term or vote changed. A change of the commit index alone
// is kept in memory and written with the next term or vote change, or when
// it commits a configuration change (the membership a restarted node
// derives must be the committed one), or once it is CommitSaveInterval
// entries ahead, or by SaveHardState: the commit
// index is volatile state in raft (a restarted node learns it again from
// the leader), and writing it on every Ready would cost two fsyncs per
// batch. So the saved commit index may lag, never lead: a node restarts
// with Config.Applied at the saved commit index and raft hands it the later
// committed entries again. An empty or unchanged hs is skipped, so a
// Ready's HardState can be passed unconditionally. Call it after Append of
// the same Ready: a commit index beyond LastIndex, or a term or commit
// lower than the latest, is ErrOutOfOrder and nothing is recorded. A failed
// write fails the Storage for good (ErrFailed).
func (s *Storage) SetHardState(hs raftpb.HardState) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.setHardStateLocked(hs)
}

func (s *Storage) setHardStateLocked(hs raftpb.HardState) error {
	switch {
	case s.err != nil:
		return s.err
	case raft.IsEmptyHardState(hs) || hs == s.hs:
		return nil
	case hs.Commit > s.last:
		return fmt.Errorf("%w: HardState commit %d beyond the log's last index %d", ErrOutOfOrder, hs.Commit, s.last)
	case hs.Term < s.hs.Term || hs.Commit < s.hs.Commit:
		return fmt.Errorf("%w: HardState (term %d, commit %d) goes back from (term %d, commit %d)", ErrOutOfOrder, hs.Term, hs.Commit, s.hs.Term, s.hs.Commit)
	}
	if !s.ChangesVote(hs) && hs.Commit-s.saved.Commit < CommitSaveInterval && !s.commitsConfChange(hs.Commit) {
		s.mu.Lock()
		s.hs = hs
		s.mu.Unlock()
		return nil
	}
	if err := vfs.WriteFileAtomic(s.fs, s.path, encodeHardState(hs), filePerm); err != nil {
		return s.fail(fmt.Errorf("write %s: %w", s.path, err))
	}
	s.mu.Lock()
	s.hs, s.saved = hs, hs
	s.mu.Unlock()
	return nil
}

// commitsConfChange reports whether a configuration change lies between
// the saved commit index and commit: the saved commit index must cover
// every committed configuration change, since a restarted node takes its
// membership from the changes up to it (InitialState) — a node restarting
// with a stale membership could elect itself alone. Called by a writer.
func (s *Storage) commitsConfChange(commit uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.Search(len(s.confs), func(i int) bool { return s.confs[i].index > s.saved.Commit })
	return i < len(s.confs) && s.confs[i].index <= commit
}

// CommitSaveInterval bounds how far the saved commit index lags: when the
// commit index has advanced this many entries past the saved one, the
// HardState is written even without a term or vote change. A restarted
// node re-applies at most about this many entries.
const CommitSaveInterval = 10_000

// SaveHardState writes the latest HardState if it differs from the saved
// one (a node calls it when it stops cleanly, so it restarts with its
// whole committed state rebuilt from the ledger).
func (s *Storage) SaveHardState() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	hs, saved, err := s.hs, s.saved, s.err
	s.mu.RUnlock()
	if err != nil || hs == saved {
		return err
	}
	if err := vfs.WriteFileAtomic(s.fs, s.path, encodeHardState(hs), filePerm); err != nil {
		return s.fail(fmt.Errorf("write %s: %w", s.path, err))
	}
	s.mu.Lock()
	s.saved = hs
	s.mu.Unlock()
	return nil
}

// ChangesVote reports whether hs changes the saved term or vote: the
// state that must be durable before this node sends any message that
// depends on it (a vote, a request for votes, anything of a new term).
func (s *Storage) ChangesVote(hs raftpb.HardState) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return !raft.IsEmptyHardState(hs) && (hs.Term != s.saved.Term || hs.Vote != s.saved.Vote)
}

// Bootstrap makes an empty Storage the genesis state of a new cluster whose
// voters are the given raft node ids. It appends, at term 1, one
// configuration change entry per voter (in increasing id order: every node
// bootstrapping the same cluster writes the same bytes), each adding that
// voter, and saves HardState{Term: 1, Commit: len(voters)}, all durably.
// One entry per voter because raft changes at most one voter per simple
// configuration change; it is what RawNode.Bootstrap does, except that
// these entries are EntryConfChangeV2, durable, and in the ledger from
// seqno 1 on, so the first signature covers the initial membership.
// After it, InitialState returns the voters; start the RawNode with
// Config.Applied = len(voters) and do not call RawNode.Bootstrap.
//
// A crash during Bootstrap can leave some of its entries without the
// HardState; calling Bootstrap again with the same voters completes it. On
// any other non-empty Storage it is ErrBootstrap.
func (s *Storage) Bootstrap(voters ...uint64) error {
	voters = slices.Clone(voters)
	slices.Sort(voters)
	switch {
	case len(voters) == 0:
		return fmt.Errorf("%w: no voters", ErrBootstrap)
	case voters[0] == 0:
		return fmt.Errorf("%w: node id 0 is raft's \"none\"", ErrBootstrap)
	case len(slices.Compact(slices.Clone(voters))) != len(voters):
		return fmt.Errorf("%w: duplicate voter", ErrBootstrap)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.err != nil {
		return s.err
	}
	ents := make([]raftpb.Entry, len(voters))
	for i, id := range voters {
		cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: id}}}
		data, err := cc.Marshal()
		if err != nil {
			return fmt.Errorf("consensus: bootstrap: %w", err)
		}
		ents[i] = raftpb.Entry{Term: 1, Index: uint64(i + 1), Type: raftpb.EntryConfChangeV2, Data: data}
	}
	if !raft.IsEmptyHardState(s.hs) || !s.holdsPrefix(ents) {
		return fmt.Errorf("%w: storage is not empty (last index %d, term %d)", ErrBootstrap, s.last, s.hs.Term)
	}
	if rest := ents[s.last:]; len(rest) > 0 {
		if err := s.appendLocked(rest); err != nil {
			return err
		}
	}
	return s.setHardStateLocked(raftpb.HardState{Term: 1, Commit: uint64(len(ents))})
}

// holdsPrefix says whether the log is a prefix of ents (a crashed
// Bootstrap). Called by a writer.
func (s *Storage) holdsPrefix(ents []raftpb.Entry) bool {
	if s.last > uint64(len(ents)) {
		return false
	}
	if s.last == 0 {
		return true
	}
	have, err := s.Entries(1, s.last+1, 1<<64-1)
	return err == nil && len(have) == int(s.last) && slices.EqualFunc(have, ents[:s.last], func(a, b raftpb.Entry) bool {
		return a.Term == b.Term && a.Index == b.Index && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
	})
}

// fail makes err the Storage's sticky failure and returns it.
func (s *Storage) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failLocked(err)
}

func (s *Storage) failLocked(err error) error {
	if s.err == nil {
		s.err = fmt.Errorf("%w: %w", ErrFailed, err)
	}
	return s.err
}
