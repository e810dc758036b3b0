package consensus

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
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
		hs := m.nextHardState()
		if err := s.SetHardState(hs); err != nil {
			t.Fatalf("SetHardState(%+v): %v", hs, err)
		}
		_ = m.ms.SetHardState(hs)
		return
	}
	ents := m.nextAppend()
	if err := s.Append(ents); err != nil {
		t.Fatalf("Append(%s): %v", describe(ents), err)
	}
	_ = m.ms.Append(ents)
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

// wantVoters is what InitialState must report: the voters added by the
// configuration changes (randEntry's add voter <index>) up to the commit.
func (m *model) wantVoters() []uint64 {
	var v []uint64
	for _, e := range m.log() {
		if e.Type == raftpb.EntryConfChangeV2 && e.Index <= m.commit {
			v = append(v, e.Index)
		}
	}
	return v
}

func checkState(t testing.TB, s *Storage, m *model) {
	t.Helper()
	hs, cs, err := s.InitialState()
	if err != nil || hs != m.hardState() {
		t.Fatalf("InitialState HardState = %+v, %v; want %+v", hs, err, m.hardState())
	}
	if want := m.wantVoters(); !slices.Equal(cs.Voters, want) || len(cs.Learners)+len(cs.VotersOutgoing) > 0 {
		t.Fatalf("ConfState = %+v; want voters %v", cs, want)
	}
}

func TestStorageMatchesMemoryStorage(t *testing.T) {
	for seed := range uint64(6) {
		m := newModel(seed)
		fsys := vfs.NewMem()
		s, l := open(t, fsys, dataDir, 1024)
		checkAgainst(t, s, m.ms, m.rng) // empty
		for range 150 {
			m.step(t, s)
			checkAgainst(t, s, m.ms, m.rng)
		}
		checkState(t, s, m)
		closeLedger(t, l)
		// Reopened from its files, it answers the same.
		s, l = open(t, fsys, dataDir, 1024)
		checkAgainst(t, s, m.ms, m.rng)
		checkState(t, s, m)
		closeLedger(t, l)
	}
}

// TestStorageOnDisk runs the model on the real file system and reopens.
func TestStorageOnDisk(t *testing.T) {
	dir := t.TempDir()
	m := newModel(99)
	s, l := open(t, vfs.OS(), dir, 4096)
	for range 60 {
		m.step(t, s)
	}
	checkAgainst(t, s, m.ms, m.rng)
	closeLedger(t, l)
	s, l = open(t, vfs.OS(), dir, 4096)
	defer closeLedger(t, l)
	checkAgainst(t, s, m.ms, m.rng)
	checkState(t, s, m)
}

// TestStorageCrash runs the model, injects a write or sync fault into one
// operation, takes a crash image and checks what survives: everything done
// before the operation, and of the operation either nothing, all of it, or
// (an Append) a truncation and a prefix of its entries — never a HardState
// ahead of the log.
func TestStorageCrash(t *testing.T) {
	var failed, torn, cutOnly int // outcomes seen, to know the test reaches them
	for seed := range uint64(120) {
		m := newModel(1000 + seed)
		rng := m.rng
		fsys := vfs.NewMem()
		s, l := open(t, fsys, dataDir, 700)
		for range rng.IntN(40) {
			m.step(t, s)
		}
		before, hsBefore := m.log(), m.hardState()
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
		if isHard {
			hs = m.nextHardState()
			opErr = s.SetHardState(hs)
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
		if isHard {
			if !slices.EqualFunc(got, before, sameEntry) {
				t.Fatalf("seed %d: log changed by SetHardState", seed)
			}
			if gotHS != hsBefore && gotHS != hs || opErr == nil && gotHS != hs {
				t.Fatalf("seed %d: HardState %+v; want %+v or %+v (op error %v)", seed, gotHS, hsBefore, hs, opErr)
			}
		} else {
			if gotHS != hsBefore {
				t.Fatalf("seed %d: HardState %+v changed by Append; want %+v", seed, gotHS, hsBefore)
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
	t.Logf("outcomes: %d operations failed, %d appends kept in part, %d truncations without the new entries", failed, torn, cutOnly)
	if failed == 0 || torn == 0 || cutOnly == 0 {
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
