package consensus

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
	"github.com/cocoledger/coco/internal/vfs"
)

// model drives a Storage and the raft.MemoryStorage oracle with the same
// random Ready persistence: appends, overwrites of uncommitted suffixes
// under a new term, HardState updates.
type model struct {
	rng    *rand.Rand
	ms     *raft.MemoryStorage
	term   uint64
	commit uint64
	// saved is what the Storage's HardState file must hold: the latest
	// HardState as of the last change of term or vote, or of a commit
	// index passing a configuration change or CommitSaveInterval beyond
	// the saved one, or of SaveHardState.
	saved raftpb.HardState
	// voteCommit is the commit index of the last HardState set that
	// changed the term or vote: the saved commit index is at least that.
	voteCommit uint64
}

func newModel(seed uint64) *model {
	return &model{rng: seeded(seed), ms: raft.NewMemoryStorage(), term: 1}
}

func (m *model) last() uint64 { l, _ := m.ms.LastIndex(); return l }

// nextAppend returns a random batch as raft would hand it over: after the
// last entry, or, one time in four, overwriting an uncommitted suffix with
// entries of a newer term.
func (m *model) nextAppend() []raftpb.Entry {
	first := m.last() + 1
	if last := m.last(); m.rng.IntN(4) == 0 && last > m.commit {
		first = m.commit + 1 + m.rng.Uint64N(last-m.commit)
		m.term++
	} else if m.rng.IntN(8) == 0 {
		m.term++
	}
	return randEntries(m.rng, m.term, first, 1+m.rng.IntN(8))
}

// nextHardState returns a HardState raft could produce now.
func (m *model) nextHardState() raftpb.HardState {
	m.commit += m.rng.Uint64N(m.last() - m.commit + 1)
	return raftpb.HardState{Term: m.term, Vote: 1 + m.rng.Uint64N(3), Commit: m.commit}
}

// step applies one random operation to both storages.
func (m *model) step(t testing.TB, s *Storage) {
	t.Helper()
	if m.rng.IntN(3) == 0 && m.last() > 0 {
		m.setHardState(t, s, m.nextHardState())
		return
	}
	ents := m.nextAppend()
	if err := s.Append(ents); err != nil {
		t.Fatalf("Append(%s): %v", describe(ents), err)
	}
	_ = m.ms.Append(ents)
}

// setHardState sets hs on s and the oracle, and tracks what s must have
// saved (SetHardState's rule).
func (m *model) setHardState(t testing.TB, s *Storage, hs raftpb.HardState) {
	t.Helper()
	if err := s.SetHardState(hs); err != nil {
		t.Fatalf("SetHardState(%+v): %v", hs, err)
	}
	if hs == m.hardState() {
		return // unchanged: skipped
	}
	if hs.Term != m.saved.Term || hs.Vote != m.saved.Vote {
		m.saved, m.voteCommit = hs, hs.Commit
	} else if hs.Commit-m.saved.Commit >= CommitSaveInterval || m.confChangeIn(m.saved.Commit, hs.Commit) {
		m.saved = hs
	}
	_ = m.ms.SetHardState(hs)
	if got := s.HardState(); got != hs {
		t.Fatalf("HardState() = %+v after SetHardState(%+v)", got, hs)
	}
}

// commitOnly advances the commit index alone to the end of the log (the
// HardState of a Ready that commits entries, written if that passes a
// configuration change), and then appends an entry that is no
// configuration change and commits it alone: that HardState is not
// written, so the saved one is behind the latest.
func (m *model) commitOnly(t testing.TB, s *Storage) {
	t.Helper()
	hs := m.hardState()
	if raft.IsEmptyHardState(hs) {
		t.Fatal("commitOnly before any HardState")
	}
	m.commit = m.last()
	hs.Commit = m.commit
	m.setHardState(t, s, hs)
	ents := []raftpb.Entry{txEntry(m.rng, ledger.KindTx, m.term, m.last()+1)}
	if err := s.Append(ents); err != nil {
		t.Fatal(err)
	}
	_ = m.ms.Append(ents)
	m.commit = m.last()
	hs.Commit = m.commit
	m.setHardState(t, s, hs)
}

// confChangeIn says whether a configuration change of the log has its
// index in (from, to]: a commit-only change from commit index from to to
// then writes the HardState file.
func (m *model) confChangeIn(from, to uint64) bool {
	for _, e := range m.log() {
		if e.Type == raftpb.EntryConfChangeV2 && e.Index > from && e.Index <= to {
			return true
		}
	}
	return false
}

// log returns the oracle's whole log.
func (m *model) log() []raftpb.Entry {
	if m.last() == 0 {
		return nil
	}
	ents, _ := m.ms.Entries(1, m.last()+1, 1<<64-1)
	return ents
}

func (m *model) hardState() raftpb.HardState {
	hs, _, _ := m.ms.InitialState()
	return hs
}

// wantVoters is what InitialState must report with HardState commit
// index commit: the voters added by the configuration changes
// (randEntry's add voter <index>) up to it.
func (m *model) wantVoters(commit uint64) []uint64 {
	var v []uint64
	for _, e := range m.log() {
		if e.Type == raftpb.EntryConfChangeV2 && e.Index <= commit {
			v = append(v, e.Index)
		}
	}
	return v
}

// checkState checks InitialState: the latest HardState on the Storage
// the model ran on, the saved one on a reopened Storage (reopened).
func checkState(t testing.TB, s *Storage, m *model, reopened bool) {
	t.Helper()
	want := m.hardState()
	if reopened {
		want = m.saved
		checkSaved(t, want, m.hardState(), m.voteCommit)
		// The saved commit index covers every committed configuration
		// change: a restart has the committed membership.
		if saved, latest := m.wantVoters(want.Commit), m.wantVoters(m.hardState().Commit); !slices.Equal(saved, latest) {
			t.Fatalf("saved HardState %+v gives voters %v; the latest %+v gives %v", want, saved, m.hardState(), latest)
		}
	}
	hs, cs, err := s.InitialState()
	if err != nil || hs != want || s.HardState() != want {
		t.Fatalf("InitialState HardState = %+v, %v (HardState() = %+v); want %+v", hs, err, s.HardState(), want)
	}
	if want := m.wantVoters(want.Commit); !slices.Equal(cs.Voters, want) || len(cs.Learners)+len(cs.VotersOutgoing) > 0 {
		t.Fatalf("ConfState = %+v; want voters %v", cs, want)
	}
}

// checkSaved checks the contract of a saved HardState against the latest
// one set before the Storage was closed: the same term and vote, and a
// commit index that may lag the latest, never lead it, and is no older
// than the commit index of the last term or vote change (voteCommit).
func checkSaved(t testing.TB, saved, latest raftpb.HardState, voteCommit uint64) {
	t.Helper()
	if saved.Term != latest.Term || saved.Vote != latest.Vote || saved.Commit > latest.Commit || saved.Commit < voteCommit {
		t.Fatalf("saved HardState %+v; want term %d, vote %d, commit in %d…%d", saved, latest.Term, latest.Vote, voteCommit, latest.Commit)
	}
}

// TestStorageMatchesMemoryStorage runs the model and reopens the Storage:
// the log answers the same; the HardState is the saved one, whose commit
// index lags the latest after a stop without SaveHardState (a crash), and
// is the latest after SaveHardState (a clean stop).
func TestStorageMatchesMemoryStorage(t *testing.T) {
	for seed := range uint64(6) {
		clean := seed%2 == 0
		m := newModel(seed)
		fsys := vfs.NewMem()
		s, l := open(t, fsys, dataDir, 1024)
		checkAgainst(t, s, m.ms, m.rng) // empty
		for range 150 {
			m.step(t, s)
			checkAgainst(t, s, m.ms, m.rng)
		}
		m.commitOnly(t, s)
		checkState(t, s, m, false)
		if m.saved == m.hardState() || savedState(t, fsys, dataDir) != m.saved {
			t.Fatalf("seed %d: HardState file holds %+v, latest %+v; want the saved %+v, behind the latest", seed, savedState(t, fsys, dataDir), m.hardState(), m.saved)
		}
		if clean {
			if err := s.SaveHardState(); err != nil {
				t.Fatal(err)
			}
			m.saved = m.hardState()
		}
		closeLedger(t, l)
		// Reopened from its files, it answers the same.
		s, l = open(t, fsys, dataDir, 1024)
		checkAgainst(t, s, m.ms, m.rng)
		checkState(t, s, m, true)
		closeLedger(t, l)
	}
}

// TestStorageOnDisk runs the model on the real file system and reopens:
// after a stop without SaveHardState the saved HardState, and once the
// reopened Storage is told the latest commit index again and stops with
// SaveHardState, the latest.
func TestStorageOnDisk(t *testing.T) {
	dir := t.TempDir()
	m := newModel(99)
	s, l := open(t, vfs.OS(), dir, 4096)
	for range 60 {
		m.step(t, s)
	}
	m.commitOnly(t, s)
	checkAgainst(t, s, m.ms, m.rng)
	latest := m.hardState()
	if m.saved == latest {
		t.Fatalf("saved HardState %+v is the latest; the test wants it behind", m.saved)
	}
	closeLedger(t, l)
	s, l = open(t, vfs.OS(), dir, 4096)
	checkAgainst(t, s, m.ms, m.rng)
	checkState(t, s, m, true)
	// Raft learns the commit index again (from the leader): a commit-only
	// change, kept in memory until SaveHardState.
	if err := s.SetHardState(latest); err != nil {
		t.Fatal(err)
	}
	if got := savedState(t, vfs.OS(), dir); got != m.saved || s.HardState() != latest {
		t.Fatalf("after SetHardState(%+v): file %+v, HardState() %+v; want file %+v", latest, got, s.HardState(), m.saved)
	}
	if err := s.SaveHardState(); err != nil {
		t.Fatal(err)
	}
	m.saved = latest
	closeLedger(t, l)
	s, l = open(t, vfs.OS(), dir, 4096)
	defer closeLedger(t, l)
	checkAgainst(t, s, m.ms, m.rng)
	checkState(t, s, m, true)
}

// TestStorageCrash runs the model, injects a write or sync fault into one
// operation, takes a crash image and checks what survives: everything done
// before the operation, and of the operation either nothing, all of it, or
// (an Append) a truncation and a prefix of its entries — never a HardState
// ahead of the log. The HardState that survives is the saved one: a
// SetHardState that changes the commit index alone writes nothing (it
// cannot fail, and the crash forgets it).
func TestStorageCrash(t *testing.T) {
	var failed, torn, cutOnly, unwritten int // outcomes seen, to know the test reaches them
	for seed := range uint64(120) {
		m := newModel(1000 + seed)
		rng := m.rng
		fsys := vfs.NewMem()
		s, l := open(t, fsys, dataDir, 700)
		for range rng.IntN(40) {
			m.step(t, s)
		}
		before, hsBefore, savedBefore := m.log(), m.hardState(), m.saved
		if rng.IntN(2) == 0 {
			fsys.FailWritesAfter(rng.Int64N(1500), syscall.EIO)
		} else {
			fsys.FailSyncsAfter(rng.IntN(4), syscall.EIO)
		}
		var (
			ents   []raftpb.Entry
			hs     raftpb.HardState
			opErr  error
			isHard = rng.IntN(3) == 0 && m.last() > 0
		)
		var writes bool // whether the operation writes the HardState file
		if isHard {
			hs = m.nextHardState()
			writes = hs != hsBefore && (hs.Term != savedBefore.Term || hs.Vote != savedBefore.Vote ||
				hs.Commit-savedBefore.Commit >= CommitSaveInterval || m.confChangeIn(savedBefore.Commit, hs.Commit))
			opErr = s.SetHardState(hs)
			if !writes && (opErr != nil || s.HardState() != hs) {
				t.Fatalf("seed %d: SetHardState(%+v) over %+v (saved %+v): %v, HardState() %+v; want it recorded in memory, with no I/O to fail", seed, hs, hsBefore, savedBefore, opErr, s.HardState())
			}
		} else {
			ents = m.nextAppend()
			opErr = s.Append(ents)
		}
		if opErr != nil {
			failed++
			if !errors.Is(opErr, ErrFailed) {
				t.Fatalf("seed %d: failed operation: %v; want ErrFailed", seed, opErr)
			}
			if _, err := s.Term(1); !errors.Is(err, ErrFailed) {
				t.Fatalf("seed %d: after a failure Term = %v; want sticky ErrFailed", seed, err)
			}
		}
		img := fsys.Crash(rng)
		s2, l2 := open(t, img, dataDir, 700)
		gotHS := s2.HardState()
		last, _ := s2.LastIndex()
		var got []raftpb.Entry
		if last > 0 {
			var err error
			if got, err = s2.Entries(1, last+1, 1<<64-1); err != nil {
				t.Fatalf("seed %d: read back: %v", seed, err)
			}
		}
		if gotHS.Commit > last {
			t.Fatalf("seed %d: HardState commit %d ahead of the log (%d)", seed, gotHS.Commit, last)
		}
		hs2, cs2, err := s2.InitialState()
		if err != nil || hs2 != gotHS {
			t.Fatalf("seed %d: InitialState %+v, %v; HardState() %+v", seed, hs2, err, gotHS)
		}
		// Unless the operation failed, the restart has the membership of
		// the latest commit index (the committed part of the log is as
		// before: the model's log).
		if latest := hsBefore; opErr == nil {
			if isHard {
				latest = hs
			}
			if want := m.wantVoters(latest.Commit); !slices.Equal(cs2.Voters, want) {
				t.Fatalf("seed %d: after the crash voters %v (HardState %+v); want %v, those of the latest %+v", seed, cs2.Voters, gotHS, want, latest)
			}
		}
		if isHard {
			if !slices.EqualFunc(got, before, sameEntry) {
				t.Fatalf("seed %d: log changed by SetHardState", seed)
			}
			switch {
			case !writes:
				unwritten++
				if gotHS != savedBefore {
					t.Fatalf("seed %d: HardState %+v after a commit-only SetHardState(%+v); want the saved %+v", seed, gotHS, hs, savedBefore)
				}
				checkSaved(t, gotHS, hs, m.voteCommit)
			case gotHS != savedBefore && gotHS != hs || opErr == nil && gotHS != hs:
				t.Fatalf("seed %d: HardState %+v; want %+v or %+v (op error %v)", seed, gotHS, savedBefore, hs, opErr)
			}
		} else {
			if gotHS != savedBefore {
				t.Fatalf("seed %d: HardState %+v changed by Append; want the saved %+v", seed, gotHS, savedBefore)
			}
			if !raft.IsEmptyHardState(hsBefore) {
				checkSaved(t, gotHS, hsBefore, m.voteCommit)
			}
			first := ents[0].Index
			if last < first-1 {
				t.Fatalf("seed %d: lost entries %d…%d synced before the crash", seed, last+1, first-1)
			}
			after := append(slices.Clone(before[:first-1]), ents...)
			oldSuffix := slices.EqualFunc(got, before[:min(int(last), len(before))], sameEntry) && int(last) <= len(before)
			newPrefix := slices.EqualFunc(got, after[:min(int(last), len(after))], sameEntry) && int(last) <= len(after)
			if !oldSuffix && !newPrefix || opErr == nil && !slices.EqualFunc(got, after, sameEntry) {
				t.Fatalf("seed %d: log after crash is %s\nwant a prefix of %s\nor of %s (op error %v)", seed, describe(got), describe(before), describe(after), opErr)
			}
			switch {
			case newPrefix && last >= first && int(last) < len(after):
				torn++
			case last == first-1 && int(last) < len(before):
				cutOnly++
			}
		}
		closeLedger(t, l2)
		_ = l.Close()
	}
	t.Logf("outcomes: %d operations failed, %d appends kept in part, %d truncations without the new entries, %d commit-only HardStates not written", failed, torn, cutOnly, unwritten)
	if failed == 0 || torn == 0 || cutOnly == 0 || unwritten == 0 {
		t.Errorf("the faults did not reach every outcome")
	}
}

func TestStorageRejectsBadInput(t *testing.T) {
	rng := seeded(7)
	s, l := open(t, vfs.NewMem(), dataDir, 1024)
	defer closeLedger(t, l)
	if err := s.Append(randEntries(rng, 2, 1, 5)); err != nil {
		t.Fatal(err)
	}
	bad := map[string][]raftpb.Entry{
		"gap":                             randEntries(rng, 2, 7, 1),
		"index 0":                         {{Term: 2, Index: 0}},
		"not consecutive":                 {randEntry(rng, 2, 6), randEntry(rng, 2, 8)},
		"term goes back":                  randEntries(rng, 1, 6, 1),
		"term goes back within the batch": {randEntry(rng, 3, 6), randEntry(rng, 2, 7)},
	}
	for name, ents := range bad {
		if err := s.Append(ents); !errors.Is(err, ErrOutOfOrder) {
			t.Errorf("%s: %v; want ErrOutOfOrder", name, err)
		}
	}
	wrongIndex := txEntry(rng, ledger.KindTx, 2, 8) // its data says seqno 8
	wrongIndex.Index = 7
	var ee *EntryError
	if err := s.Append([]raftpb.Entry{randEntry(rng, 2, 6), wrongIndex}); !errors.As(err, &ee) || ee.Index != 7 || ee.Term != 2 {
		t.Errorf("mismatched ledger entry: %v; want *EntryError at index 7, term 2", err)
	}
	// Nothing was written, and the Storage still works.
	if last, err := s.LastIndex(); last != 5 || err != nil {
		t.Fatalf("LastIndex = %d, %v after refused appends", last, err)
	}
	if _, err := s.Entries(1, 7, 1<<30); err != raft.ErrUnavailable {
		t.Errorf("Entries beyond the log: %v; want raft.ErrUnavailable", err)
	}
	if err := s.SetHardState(raftpb.HardState{Term: 2, Commit: 6}); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("commit beyond the log: %v; want ErrOutOfOrder", err)
	}
	if err := s.SetHardState(raftpb.HardState{Term: 2, Commit: 4}); err != nil {
		t.Fatal(err)
	}
	for _, hs := range []raftpb.HardState{{Term: 1, Commit: 4}, {Term: 2, Commit: 3}} {
		if err := s.SetHardState(hs); !errors.Is(err, ErrOutOfOrder) {
			t.Errorf("HardState %+v going back: %v; want ErrOutOfOrder", hs, err)
		}
	}
	if err := s.Bootstrap(1); !errors.Is(err, ErrBootstrap) {
		t.Errorf("Bootstrap of a non-empty storage: %v; want ErrBootstrap", err)
	}
	if err := s.Append(randEntries(rng, 2, 6, 3)); err != nil {
		t.Fatalf("Append after refusals: %v", err)
	}
}

// TestStorageRefusesToCutCommitted: a leader overwriting entries the
// ledger knows committed is a broken leader; the Storage fails for good.
func TestStorageRefusesToCutCommitted(t *testing.T) {
	rng := seeded(8)
	s, l := open(t, vfs.NewMem(), dataDir, 1024)
	defer l.Close()
	if err := s.Append(randEntries(rng, 2, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := l.SetCommitted(8); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHardState(raftpb.HardState{Term: 2, Commit: 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(randEntries(rng, 3, 9, 2)); err != nil {
		t.Fatalf("overwriting uncommitted entries: %v", err)
	}
	err := s.Append(randEntries(rng, 4, 5, 2)) // the ledger refuses
	if !errors.Is(err, ErrFailed) || !errors.Is(err, ledger.ErrCommittedTruncation) {
		t.Fatalf("overwriting committed entries: %v; want ErrFailed wrapping ledger.ErrCommittedTruncation", err)
	}
	for name, f := range map[string]func() error{
		"Append":       func() error { return s.Append(randEntries(rng, 4, 11, 1)) },
		"SetHardState": func() error { return s.SetHardState(raftpb.HardState{Term: 9}) },
		"Term":         func() error { _, err := s.Term(1); return err },
		"Entries":      func() error { _, err := s.Entries(1, 2, 100); return err },
		"LastIndex":    func() error { _, err := s.LastIndex(); return err },
		"InitialState": func() error { _, _, err := s.InitialState(); return err },
	} {
		if err := f(); !errors.Is(err, ErrFailed) {
			t.Errorf("%s after failure: %v; want ErrFailed", name, err)
		}
	}
}

// TestStorageRefusesToOverwriteRaftCommit: raft's own commit index, from
// the HardState, guards entries the ledger does not yet know committed.
func TestStorageRefusesToOverwriteRaftCommit(t *testing.T) {
	rng := seeded(10)
	s, l := open(t, vfs.NewMem(), dataDir, 1024)
	defer l.Close()
	if err := s.Append(randEntries(rng, 2, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHardState(raftpb.HardState{Term: 2, Commit: 6}); err != nil {
		t.Fatal(err)
	}
	err := s.Append(randEntries(rng, 3, 6, 1))
	if !errors.Is(err, ErrFailed) || !errors.Is(err, ledger.ErrCommittedTruncation) {
		t.Fatalf("overwriting raft-committed entry 6: %v; want ErrFailed wrapping ledger.ErrCommittedTruncation", err)
	}
	if d := l.DurableSeqno(); d != 10 {
		t.Fatalf("ledger cut to %d", d)
	}
}

func TestOpenStorageRefusesLedgerBehind(t *testing.T) {
	rng := seeded(9)
	fsys := vfs.NewMem()
	s, l := open(t, fsys, dataDir, 1024)
	if err := s.Append(randEntries(rng, 2, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHardState(raftpb.HardState{Term: 2, Commit: 9}); err != nil {
		t.Fatal(err)
	}
	// A lying disk, or an old copy of the ledger: entries 8… are gone.
	if err := l.Truncate(7); err != nil {
		t.Fatal(err)
	}
	closeLedger(t, l)
	l, _, err := ledger.Open(ledgerDir(dataDir), ledger.Options{FS: fsys, ChunkSize: 1024, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = OpenStorage(fsys, dataDir, l)
	var lb *LedgerBehindError
	if !errors.As(err, &lb) || !errors.Is(err, ErrLedgerBehind) || lb.Commit != 9 || lb.Durable != 7 {
		t.Fatalf("OpenStorage: %v; want *LedgerBehindError{Commit: 9, Durable: 7}", err)
	}
	// Unsynced entries mean another writer.
	if err := l.Append(&ledger.Entry{Kind: ledger.KindTx, View: 2, Seqno: 8}); err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFileAtomic(fsys, filepath.Join(dataDir, StateFileName), encodeHardState(raftpb.HardState{Term: 2, Commit: 7}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = OpenStorage(fsys, dataDir, l); !errors.As(err, &lb) || lb.Last != 8 {
		t.Fatalf("OpenStorage with unsynced entries: %v; want *LedgerBehindError{Last: 8}", err)
	}
}

func TestHardStateFile(t *testing.T) {
	hs := raftpb.HardState{Term: 0x0102030405060708, Vote: 3, Commit: 1 << 40}
	b := encodeHardState(hs)
	if len(b) != stateSize {
		t.Fatalf("%d bytes, want %d", len(b), stateSize)
	}
	if got, err := decodeHardState(b); err != nil || got != hs {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := range b {
		c := slices.Clone(b)
		c[i] ^= 0x40
		if _, err := decodeHardState(c); !errors.Is(err, ErrBadState) {
			t.Fatalf("byte %d flipped: %v; want ErrBadState", i, err)
		}
	}
	for _, n := range []int{0, 1, stateSize - 1, stateSize + 1} {
		if _, err := decodeHardState(make([]byte, n)); !errors.Is(err, ErrBadState) {
			t.Fatalf("%d bytes: %v; want ErrBadState", n, err)
		}
	}
	// A damaged file stops OpenStorage.
	fsys := vfs.NewMem()
	if err := vfs.MkdirAllSync(fsys, dataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFileAtomic(fsys, filepath.Join(dataDir, StateFileName), b[:10], 0o600); err != nil {
		t.Fatal(err)
	}
	l, _, err := ledger.Open(ledgerDir(dataDir), ledger.Options{FS: fsys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := OpenStorage(fsys, dataDir, l); !errors.Is(err, ErrBadState) {
		t.Fatalf("OpenStorage with a damaged HardState file: %v; want ErrBadState", err)
	}
}

func TestBootstrap(t *testing.T) {
	fsys := vfs.NewMem()
	s, l := open(t, fsys, dataDir, 1024)
	for _, voters := range [][]uint64{nil, {0, 1}, {2, 1, 2}} {
		if err := s.Bootstrap(voters...); !errors.Is(err, ErrBootstrap) {
			t.Errorf("Bootstrap(%v): %v; want ErrBootstrap", voters, err)
		}
	}
	if err := s.Bootstrap(3, 1, 2); err != nil {
		t.Fatal(err)
	}
	hs, cs, err := s.InitialState()
	if err != nil || hs != (raftpb.HardState{Term: 1, Commit: 3}) || !slices.Equal(cs.Voters, []uint64{1, 2, 3}) {
		t.Fatalf("InitialState = %+v, %+v, %v", hs, cs, err)
	}
	if err := s.Bootstrap(4); !errors.Is(err, ErrBootstrap) {
		t.Fatalf("second Bootstrap: %v; want ErrBootstrap", err)
	}
	// The entries are in the ledger, in id order, as KindRaft entries.
	for i := range uint64(3) {
		e, err := l.Read(ids.Seqno(i + 1))
		if err != nil || e.Kind != ledger.KindRaft || e.View != 1 {
			t.Fatalf("entry %d: %+v, %v", i+1, e, err)
		}
		r, err := ToRaft(e)
		if err != nil || !sameEntry(r, addVoter(1, i+1, i+1)) {
			t.Fatalf("entry %d: %s, %v", i+1, describe([]raftpb.Entry{r}), err)
		}
	}
	closeLedger(t, l)
	s, l = open(t, fsys, dataDir, 1024)
	defer closeLedger(t, l)
	if hs2, cs2, err := s.InitialState(); err != nil || hs2 != hs || !slices.Equal(cs2.Voters, cs.Voters) {
		t.Fatalf("after reopen InitialState = %+v, %+v, %v", hs2, cs2, err)
	}
	if _, err := fsys.Stat(filepath.Join(dataDir, StateFileName+".tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary HardState file left behind: %v", err)
	}
}

// TestBootstrapCrash: a crash during Bootstrap leaves a prefix of its
// entries and no HardState; Bootstrap again completes it.
func TestBootstrapCrash(t *testing.T) {
	completed := 0
	for seed := range uint64(40) {
		rng := seeded(500 + seed)
		fsys := vfs.NewMem()
		s, l := open(t, fsys, dataDir, 1024)
		fsys.FailSyncsAfter(rng.IntN(6), syscall.EIO)
		if err := s.Bootstrap(1, 2, 3); err == nil {
			completed++
		}
		img := fsys.Crash(rng)
		_ = l.Close()
		s, l = open(t, img, dataDir, 1024)
		if err := s.Bootstrap(1, 2, 3); err != nil && !(errors.Is(err, ErrBootstrap) && s.HardState().Commit == 3) {
			t.Fatalf("seed %d: Bootstrap again: %v", seed, err)
		}
		hs, cs, err := s.InitialState()
		if err != nil || hs != (raftpb.HardState{Term: 1, Commit: 3}) || !slices.Equal(cs.Voters, []uint64{1, 2, 3}) {
			t.Fatalf("seed %d: after Bootstrap again: %+v, %+v, %v", seed, hs, cs, err)
		}
		closeLedger(t, l)
	}
	if completed == 0 || completed == 40 {
		t.Errorf("%d of 40 bootstraps completed before the crash; the test wants both outcomes", completed)
	}
	// A log that is not a prefix of the bootstrap entries is no crashed
	// Bootstrap.
	s, l := open(t, vfs.NewMem(), dataDir, 1024)
	defer closeLedger(t, l)
	if err := s.Append([]raftpb.Entry{addVoter(1, 1, 1), addVoter(1, 2, 2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Bootstrap(2, 3); !errors.Is(err, ErrBootstrap) {
		t.Fatalf("Bootstrap(2, 3) over entries adding 1, 2: %v; want ErrBootstrap", err)
	}
	if err := s.Bootstrap(1, 2, 3); err != nil {
		t.Fatalf("Bootstrap(1, 2, 3) over entries adding 1, 2: %v", err)
	}
}

// TestConfStateReplay checks joint configurations: InitialState replays
// enter-joint and leave-joint changes as raft applied them.
func TestConfStateReplay(t *testing.T) {
	s, l := open(t, vfs.NewMem(), dataDir, 1024)
	defer closeLedger(t, l)
	if err := s.Bootstrap(1, 2, 3); err != nil {
		t.Fatal(err)
	}
	enter := raftpb.ConfChangeV2{Transition: raftpb.ConfChangeTransitionJointExplicit, Changes: []raftpb.ConfChangeSingle{
		{Type: raftpb.ConfChangeAddNode, NodeID: 4}, {Type: raftpb.ConfChangeRemoveNode, NodeID: 1}, {Type: raftpb.ConfChangeAddLearnerNode, NodeID: 5},
	}}
	ed, _ := enter.Marshal()
	ents := []raftpb.Entry{{Term: 2, Index: 4}, {Term: 2, Index: 5, Type: raftpb.EntryConfChangeV2, Data: ed}, {Term: 2, Index: 6, Type: raftpb.EntryConfChangeV2}}
	if err := s.Append(ents); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		commit uint64
		want   raftpb.ConfState
	}{
		{4, raftpb.ConfState{Voters: []uint64{1, 2, 3}}},
		{5, raftpb.ConfState{Voters: []uint64{2, 3, 4}, VotersOutgoing: []uint64{1, 2, 3}, Learners: []uint64{5}}},
		{6, raftpb.ConfState{Voters: []uint64{2, 3, 4}, Learners: []uint64{5}}},
	} {
		commit, want := c.commit, c.want
		if err := s.SetHardState(raftpb.HardState{Term: 2, Commit: commit}); err != nil {
			t.Fatal(err)
		}
		_, cs, err := s.InitialState()
		if err != nil || cs.Equivalent(want) != nil {
			t.Fatalf("commit %d: ConfState %+v, %v; want %+v", commit, cs, err, want)
		}
	}
	// A committed change that does not apply (leaving a joint config that is
	// not entered) is reported, not guessed around.
	if err := s.Append([]raftpb.Entry{{Term: 2, Index: 7, Type: raftpb.EntryConfChangeV2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHardState(raftpb.HardState{Term: 2, Commit: 7}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.InitialState(); !errors.Is(err, ErrBadConfChange) {
		t.Fatalf("InitialState over a bad change: %v; want ErrBadConfChange", err)
	}
}

// stateWrites opens the Storage of dataDir on fsys and counts the writes
// of its HardState file: the fsyncs of vfs.WriteFileAtomic's temporary
// file, one per write.
func stateWrites(t *testing.T, fsys vfs.FS) (*Storage, *ledger.Ledger, *int) {
	t.Helper()
	var hook atomic.Pointer[func(string)]
	writes := new(int)
	tmp := filepath.Join(dataDir, StateFileName) + ".tmp"
	count := func(name string) {
		if name == tmp {
			*writes++
		}
	}
	hook.Store(&count)
	s, l := open(t, hookFS{FS: fsys, hook: &hook}, dataDir, 1<<20)
	return s, l, writes
}

// appendLong appends entries 1…n at term 2, empty but for configuration
// changes adding voter i at each index i of voters.
func appendLong(t *testing.T, s *Storage, n uint64, voters ...uint64) {
	t.Helper()
	const batch = 2048
	for first := uint64(1); first <= n; first += batch {
		ents := make([]raftpb.Entry, min(batch, n-first+1))
		for i := range ents {
			ents[i] = raftpb.Entry{Term: 2, Index: first + uint64(i)}
			if slices.Contains(voters, ents[i].Index) {
				ents[i] = addVoter(2, ents[i].Index, ents[i].Index)
			}
		}
		if err := s.Append(ents); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSetHardStateCommitOnly: SetHardState writes the HardState file when
// the term or the vote changes, or when the commit index passes a
// configuration change or is CommitSaveInterval beyond the saved one; any
// other change of the commit index alone leaves the file untouched
// (HardState reports it), and a reopened Storage starts from the file,
// with the membership of the latest commit index.
func TestSetHardStateCommitOnly(t *testing.T) {
	fsys := vfs.NewMem()
	s, l, writes := stateWrites(t, fsys)
	const n = CommitSaveInterval + 20
	appendLong(t, s, n, 3, CommitSaveInterval+5)
	file := func() []byte {
		b, err := vfs.ReadFile(fsys, filepath.Join(dataDir, StateFileName))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	set := func(hs raftpb.HardState, wantWrites int, wantFile raftpb.HardState) {
		t.Helper()
		if err := s.SetHardState(hs); err != nil {
			t.Fatalf("SetHardState(%+v): %v", hs, err)
		}
		if *writes != wantWrites || !bytes.Equal(file(), encodeHardState(wantFile)) {
			got, _ := decodeHardState(file())
			t.Fatalf("after SetHardState(%+v): %d writes, file %+v; want %d, %+v", hs, *writes, got, wantWrites, wantFile)
		}
		if got, _, err := s.InitialState(); err != nil || got != hs || s.HardState() != hs {
			t.Fatalf("after SetHardState(%+v): InitialState %+v, %v, HardState() %+v; want the latest", hs, got, err, s.HardState())
		}
	}

	// A vote (the term and the vote change): written.
	hs1 := raftpb.HardState{Term: 2, Vote: 1, Commit: 1}
	set(hs1, 1, hs1)
	// The commit index alone, short of the configuration change at 3: not
	// written.
	set(raftpb.HardState{Term: 2, Vote: 1, Commit: 2}, 1, hs1)
	// Passing it (up to it included): written.
	hsConf := raftpb.HardState{Term: 2, Vote: 1, Commit: 3}
	if s.ChangesVote(hsConf) {
		t.Fatalf("ChangesVote(%+v) over %+v", hsConf, hs1)
	}
	set(hsConf, 2, hsConf)
	// The commit index alone, up to CommitSaveInterval-1 past the saved
	// one, with no configuration change past it (the one at the saved
	// commit index is covered): not written.
	for _, c := range []uint64{4, 5, 500, 2 + CommitSaveInterval} {
		hs := raftpb.HardState{Term: 2, Vote: 1, Commit: c}
		if s.ChangesVote(hs) {
			t.Fatalf("ChangesVote(%+v) over %+v", hs, hsConf)
		}
		set(hs, 2, hsConf)
	}
	// An unchanged or empty HardState: nothing.
	set(raftpb.HardState{Term: 2, Vote: 1, Commit: 2 + CommitSaveInterval}, 2, hsConf)
	if err := s.SetHardState(raftpb.HardState{}); err != nil || *writes != 2 {
		t.Fatalf("SetHardState of the empty HardState: %v, %d writes", err, *writes)
	}
	// CommitSaveInterval past the saved commit index: written.
	hs2 := raftpb.HardState{Term: 2, Vote: 1, Commit: 3 + CommitSaveInterval}
	set(hs2, 3, hs2)
	hs3 := raftpb.HardState{Term: 2, Vote: 1, Commit: 4 + CommitSaveInterval}
	set(hs3, 3, hs2)
	// A new term, whatever the commit index: written. A vote in it too.
	hs4 := raftpb.HardState{Term: 3, Commit: hs3.Commit}
	if !s.ChangesVote(hs4) {
		t.Fatalf("ChangesVote(%+v) = false over %+v", hs4, hs3)
	}
	set(hs4, 4, hs4)
	hs5 := raftpb.HardState{Term: 3, Vote: 2, Commit: hs3.Commit}
	if !s.ChangesVote(hs5) {
		t.Fatalf("ChangesVote(%+v) = false over %+v", hs5, hs4)
	}
	set(hs5, 5, hs5)
	// The commit index alone, passing the configuration change at
	// CommitSaveInterval+5 well within the interval: written.
	hs6 := raftpb.HardState{Term: 3, Vote: 2, Commit: hs5.Commit + 10}
	set(hs6, 6, hs6)
	hs7 := raftpb.HardState{Term: 3, Vote: 2, Commit: hs6.Commit + 1}
	set(hs7, 6, hs6)
	if s.ChangesVote(raftpb.HardState{}) {
		t.Fatal("ChangesVote of the empty HardState")
	}
	// Going back from the latest (not the saved) commit index is refused,
	// and nothing is recorded.
	back := raftpb.HardState{Term: 3, Vote: 2, Commit: hs7.Commit - 1}
	if err := s.SetHardState(back); !errors.Is(err, ErrOutOfOrder) || s.HardState() != hs7 || *writes != 6 {
		t.Fatalf("SetHardState(%+v) after %+v: %v, HardState() %+v, %d writes; want ErrOutOfOrder, nothing recorded", back, hs7, err, s.HardState(), *writes)
	}

	// Reopened without SaveHardState (a crash), it has the saved
	// HardState: the latest term and vote, a commit index behind, and yet
	// the configuration of the latest commit index (voters 3 and
	// CommitSaveInterval+5).
	wantVoters := []uint64{3, CommitSaveInterval + 5}
	closeLedger(t, l)
	s, l, writes = stateWrites(t, fsys)
	defer closeLedger(t, l)
	hs, cs, err := s.InitialState()
	if err != nil || hs != hs6 || s.HardState() != hs6 || !slices.Equal(cs.Voters, wantVoters) {
		t.Fatalf("after reopen: InitialState %+v, %+v, %v, HardState() %+v; want %+v, voters %v", hs, cs, err, s.HardState(), hs6, wantVoters)
	}
	checkSaved(t, hs, hs7, hs5.Commit)
	if last, err := s.LastIndex(); last != n || err != nil {
		t.Fatalf("after reopen: LastIndex %d, %v; want %d", last, err, n)
	}
	// Raft learns the commit index again: a commit-only change.
	set(hs7, 0, hs6)
	if _, cs, err := s.InitialState(); err != nil || !slices.Equal(cs.Voters, wantVoters) {
		t.Fatalf("at commit %d: ConfState %+v, %v; want voters %v", hs7.Commit, cs, err, wantVoters)
	}
}

// TestSaveHardState: SaveHardState writes the latest HardState when it
// differs from the saved one, and is a no-op otherwise; the next
// commit-only write is CommitSaveInterval past what it saved; a reopened
// Storage has the latest HardState exactly; a failed write fails the
// Storage for good.
func TestSaveHardState(t *testing.T) {
	fsys := vfs.NewMem()
	path := filepath.Join(dataDir, StateFileName)
	s, l, writes := stateWrites(t, fsys)
	save := func(wantWrites int, wantFile raftpb.HardState) {
		t.Helper()
		if err := s.SaveHardState(); err != nil {
			t.Fatalf("SaveHardState: %v", err)
		}
		if got := savedState(t, fsys, dataDir); *writes != wantWrites || got != wantFile {
			t.Fatalf("after SaveHardState: %d writes, file %+v; want %d, %+v", *writes, got, wantWrites, wantFile)
		}
	}
	// Nothing set: nothing to write, no file.
	save(0, raftpb.HardState{})
	if _, err := fsys.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("SaveHardState of an empty Storage created the file: %v", err)
	}
	const n = CommitSaveInterval + 20
	// The configuration changes (at 3 and 7) are committed with the vote,
	// so no commit-only change below passes one.
	appendLong(t, s, n, 3, 7)
	setHS := func(hs raftpb.HardState) {
		t.Helper()
		if err := s.SetHardState(hs); err != nil {
			t.Fatalf("SetHardState(%+v): %v", hs, err)
		}
	}
	hs1 := raftpb.HardState{Term: 2, Vote: 1, Commit: 7}
	setHS(hs1)
	save(1, hs1) // saved is the latest: no-op
	hs2 := raftpb.HardState{Term: 2, Vote: 1, Commit: 9}
	setHS(hs2)
	if got := savedState(t, fsys, dataDir); *writes != 1 || got != hs1 {
		t.Fatalf("commit %d: %d writes, file %+v; want it unwritten", hs2.Commit, *writes, got)
	}
	save(2, hs2)
	save(2, hs2) // again: no-op
	// The interval counts from the commit index SaveHardState wrote (9),
	// not from the last term or vote change (7).
	setHS(raftpb.HardState{Term: 2, Vote: 1, Commit: 8 + CommitSaveInterval})
	if got := savedState(t, fsys, dataDir); *writes != 2 || got != hs2 {
		t.Fatalf("commit %d, %d past the saved one: %d writes, file %+v; want it unwritten", 8+CommitSaveInterval, CommitSaveInterval-1, *writes, got)
	}
	hs3 := raftpb.HardState{Term: 2, Vote: 1, Commit: 9 + CommitSaveInterval}
	setHS(hs3)
	if got := savedState(t, fsys, dataDir); *writes != 3 || got != hs3 {
		t.Fatalf("commit %d, CommitSaveInterval past the saved one: %d writes, file %+v; want it written", hs3.Commit, *writes, got)
	}
	save(3, hs3)
	// A clean stop: the reopened Storage has the latest HardState exactly,
	// and the configuration as of its commit index.
	hs4 := raftpb.HardState{Term: 2, Vote: 1, Commit: n}
	setHS(hs4)
	save(4, hs4)
	closeLedger(t, l)
	s, l, writes = stateWrites(t, fsys)
	defer func() { _ = l.Close() }()
	if hs, cs, err := s.InitialState(); err != nil || hs != hs4 || !slices.Equal(cs.Voters, []uint64{3, 7}) {
		t.Fatalf("after SaveHardState and reopen: InitialState %+v, %+v, %v; want %+v, voters [3 7]", hs, cs, err, hs4)
	}
	save(0, hs4) // nothing new

	// A failed write fails the Storage for good and leaves the file as it
	// was. A commit-only SetHardState does no I/O, so it cannot fail.
	if err := s.Append([]raftpb.Entry{{Term: 2, Index: n + 1}}); err != nil {
		t.Fatal(err)
	}
	fsys.FailSyncsAfter(0, syscall.EIO)
	hs5 := raftpb.HardState{Term: 2, Vote: 1, Commit: n + 1}
	setHS(hs5)
	if err := s.SaveHardState(); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("SaveHardState on a failing disk: %v; want ErrFailed wrapping EIO", err)
	}
	fsys.ClearFaults()
	if err := s.SaveHardState(); !errors.Is(err, ErrFailed) {
		t.Fatalf("SaveHardState after a failure: %v; want sticky ErrFailed", err)
	}
	if _, _, err := s.InitialState(); !errors.Is(err, ErrFailed) {
		t.Fatalf("InitialState after a failure: %v; want ErrFailed", err)
	}
	if got := savedState(t, fsys, dataDir); got != hs4 {
		t.Fatalf("after the failed write the file holds %+v; want %+v", got, hs4)
	}
}

// TestRestartNeverShrinksMembership: a node bootstrapped alone, then
// joined by two voters whose configuration changes it commits with
// commit-only HardStates, restarts after a crash (no SaveHardState) with
// all three voters, whatever commit indices raft handed it. With the
// commit index saved lazily it restarted with the membership of a stale
// commit index, the lone bootstrap voter, and elected itself alone.
func TestRestartNeverShrinksMembership(t *testing.T) {
	const last = 9
	// votersAt is the membership as of commit index c: voter 1 (the
	// bootstrap entry at 1), 2 added at 3, 3 added at 6.
	votersAt := func(c uint64) []uint64 {
		switch {
		case c >= 6:
			return []uint64{1, 2, 3}
		case c >= 3:
			return []uint64{1, 2}
		}
		return []uint64{1}
	}
	for i, commits := range [][]uint64{
		{last},
		{2, 3, 4, 5, 6, 7, 8, last},
		{4, 5, 8},
		{3, 5, 6, last},
	} {
		rng := seeded(uint64(300 + i))
		fsys := vfs.NewMem()
		s, l := open(t, fsys, dataDir, 1024)
		if err := s.Bootstrap(1); err != nil {
			t.Fatal(err)
		}
		// An election in term 2: a vote, written.
		if err := s.SetHardState(raftpb.HardState{Term: 2, Vote: 1, Commit: 1}); err != nil {
			t.Fatal(err)
		}
		ents := []raftpb.Entry{
			txEntry(rng, ledger.KindTx, 2, 2),
			addVoter(2, 3, 2),
			txEntry(rng, ledger.KindTx, 2, 4),
			txEntry(rng, ledger.KindSignature, 2, 5),
			addVoter(2, 6, 3),
			txEntry(rng, ledger.KindTx, 2, 7),
			txEntry(rng, ledger.KindTx, 2, 8),
			txEntry(rng, ledger.KindSignature, 2, last),
		}
		if err := s.Append(ents); err != nil {
			t.Fatal(err)
		}
		lagged := false
		for _, c := range commits {
			// Raft commits entries: the same term and vote, a new commit
			// index.
			hs := raftpb.HardState{Term: 2, Vote: 1, Commit: c}
			if s.ChangesVote(hs) {
				t.Fatalf("case %d: ChangesVote(%+v)", i, hs)
			}
			if err := s.SetHardState(hs); err != nil {
				t.Fatalf("case %d: SetHardState(%+v): %v", i, hs, err)
			}
			// kill -9 now: the restart has the membership of commit c.
			saved := savedState(t, fsys, dataDir)
			lagged = lagged || saved.Commit < c
			s2, l2 := open(t, fsys.Crash(rng), dataDir, 1024)
			got, cs, err := s2.InitialState()
			if err != nil || got != saved || !slices.Equal(cs.Voters, votersAt(c)) || len(cs.Learners)+len(cs.VotersOutgoing) > 0 {
				t.Fatalf("case %d: restarted at commit %d: InitialState %+v, %+v, %v; want %+v, voters %v", i, c, got, cs, err, saved, votersAt(c))
			}
			checkSaved(t, got, hs, 1)
			_ = l2.Close()
		}
		if len(commits) > 1 && !lagged {
			t.Errorf("case %d: the saved commit index never lagged; the test wants the lazy saves", i)
		}
		// Reopened without SaveHardState: all three voters.
		closeLedger(t, l)
		s, l = open(t, fsys, dataDir, 1024)
		if _, cs, err := s.InitialState(); err != nil || !slices.Equal(cs.Voters, []uint64{1, 2, 3}) {
			t.Fatalf("case %d: reopened after commits %v without SaveHardState: ConfState %+v, %v; want voters [1 2 3]", i, commits, cs, err)
		}
		closeLedger(t, l)
	}
}
