package kv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"weak"

	"github.com/cocoledger/coco/internal/ids"
)

func mustRollback(t *testing.T, s *Store, to ids.Seqno) {
	t.Helper()
	if err := s.Rollback(to); err != nil {
		t.Fatalf("Rollback(%d): %v", to, err)
	}
	if s.Seqno() != to {
		t.Fatalf("Seqno = %d after Rollback(%d)", s.Seqno(), to)
	}
}

func wantGet(t *testing.T, s *Store, m MapName, k, want string, wantVersion ids.Seqno) {
	t.Helper()
	v, ver, ok := s.Get(m, []byte(k))
	if want == "" && (ok || ver != 0) || want != "" && (!ok || string(v) != want || ver != wantVersion) {
		t.Fatalf("Get(%q) = %q@%d %v, want %q@%d", k, v, ver, ok, want, wantVersion)
	}
}

// TestRollbackRecommit rolls back and writes other contents at the same
// seqnos through each of Commit, Sequence and Apply.
func TestRollbackRecommit(t *testing.T) {
	s := NewStore()
	put(t, s, mapA, "k", "1")                  // 1
	put(t, s, mapA, "k", "2", "j", "x")        // 2
	put(t, s, mapP, "p", "3")                  // 3
	if _, err := s.Sequence(nil); err != nil { // 4
		t.Fatal(err)
	}
	put(t, s, mapA, "k", "5") // 5
	mustRollback(t, s, 5)     // a no-op
	mustRollback(t, s, 2)
	wantGet(t, s, mapA, "k", "2", 2)
	wantGet(t, s, mapA, "j", "x", 2)
	wantGet(t, s, mapP, "p", "", 0)
	if n := s.cur.Load().maps.Len(); n != 1 {
		t.Fatalf("directory holds %d maps, want 1", n)
	}

	var sealed ids.Seqno
	tx := s.Begin()
	tx.Put(mapA, []byte("k"), []byte("3'"))
	tx.Delete(mapA, []byte("j"))
	if seqno, err := s.Commit(tx, func(seqno ids.Seqno, _ *WriteSet) error { sealed = seqno; return nil }); err != nil || seqno != 3 || sealed != 3 {
		t.Fatalf("Commit = %d, %v, sealed %d; want 3", seqno, err, sealed)
	}
	if seqno, err := s.Sequence(nil); err != nil || seqno != 4 {
		t.Fatalf("Sequence = %d, %v; want 4", seqno, err)
	}
	ws := &WriteSet{Maps: []MapWrites{{Name: mapP, Writes: []Write{{Key: []byte("p"), Value: []byte("5'")}}}}}
	if err := s.Apply(6, ws); !errors.Is(err, ErrSeqno) {
		t.Fatalf("Apply(6) at 4 = %v, want ErrSeqno", err)
	}
	if err := s.Apply(5, ws); err != nil {
		t.Fatal(err)
	}
	wantGet(t, s, mapA, "k", "3'", 3)
	wantGet(t, s, mapA, "j", "", 0)
	wantGet(t, s, mapP, "p", "5'", 5)

	// Back to the very first state, then forward again.
	mustRollback(t, s, 0)
	if n := s.cur.Load().maps.Len(); n != 0 {
		t.Fatalf("directory holds %d maps at seqno 0", n)
	}
	if seqno := put(t, s, mapA, "k", "1'"); seqno != 1 {
		t.Fatalf("seqno %d after Rollback(0), want 1", seqno)
	}
	wantGet(t, s, mapA, "k", "1'", 1)
}

// TestRollbackSnapshotIsolation: a transaction begun before a rollback
// keeps reading its snapshot, through the rollback and the commits that
// reuse its seqnos.
func TestRollbackSnapshotIsolation(t *testing.T) {
	s := NewStore()
	put(t, s, mapA, "k", "1", "j", "1")
	put(t, s, mapA, "k", "2", "new", "2")
	old := s.Begin()
	if v, _ := old.Get(mapA, []byte("k")); string(v) != "2" {
		t.Fatalf("Get(k) = %q before the rollback", v)
	}
	mustRollback(t, s, 1)
	put(t, s, mapA, "k", "2'", "other", "2'")
	put(t, s, mapA, "k", "3'")
	if v, _ := old.Get(mapA, []byte("k")); string(v) != "2" {
		t.Errorf("old snapshot reads k = %q, want 2", v)
	}
	if v, ok := old.Get(mapA, []byte("other")); ok {
		t.Errorf("old snapshot reads other = %q, a key of the new history", v)
	}
	if items, _ := old.Scan(mapA, nil, nil, 0); fmtItems(items) != `["j"="1"@1 "k"="2"@2 "new"="2"@2]` {
		t.Errorf("old snapshot scans %s", fmtItems(items))
	}
	if items, _ := s.Begin().Scan(mapA, nil, nil, 0); fmtItems(items) != `["j"="1"@1 "k"="3'"@3 "other"="2'"@2]` {
		t.Errorf("latest state scans %s", fmtItems(items))
	}
}

func wantRolledBack(t *testing.T, s *Store, tx *Tx, readSeqno ids.Seqno) {
	t.Helper()
	before := s.Seqno()
	seqno, err := s.Commit(tx, func(ids.Seqno, *WriteSet) error {
		t.Error("seal called for a rolled back transaction")
		return nil
	})
	var rb *RolledBackError
	if !errors.Is(err, ErrRolledBack) || !errors.As(err, &rb) || rb.ReadSeqno != readSeqno || seqno != 0 {
		t.Fatalf("Commit = %d, %v; want a RolledBackError at %d", seqno, err, readSeqno)
	}
	if errors.Is(err, ErrConflict) {
		t.Fatalf("Commit = %v matches ErrConflict", err)
	}
	if s.Seqno() != before {
		t.Fatalf("Seqno %d after a refused commit, was %d", s.Seqno(), before)
	}
	if _, err := s.Commit(tx, nil); !errors.Is(err, ErrTxDone) {
		t.Fatalf("second Commit = %v, want ErrTxDone", err)
	}
}

// TestRollbackStaleTx: a transaction whose snapshot was dropped cannot
// commit, even when every version it read is back at the same seqno with
// other contents, which validation alone would accept.
func TestRollbackStaleTx(t *testing.T) {
	s := NewStore()
	put(t, s, mapA, "k", "1")
	put(t, s, mapA, "k", "2")
	stale := s.Begin() // at 2
	if v, _ := stale.Get(mapA, []byte("k")); string(v) != "2" {
		t.Fatalf("Get(k) = %q", v)
	}
	stale.Scan(mapA, nil, nil, 0)
	stale.Put(mapA, []byte("sum"), []byte("2"))
	readOnly := s.Begin()
	readOnly.Get(mapA, []byte("k"))
	blind := s.Begin() // at 2 too; it will write without reading
	mustRollback(t, s, 1)
	before := s.Begin() // at 1: still in the history
	before.Get(mapA, []byte("j"))
	before.Put(mapA, []byte("j"), []byte("x"))

	put(t, s, mapA, "k", "2'") // k is at version 2 again
	if _, ver, _ := s.Get(mapA, []byte("k")); ver != 2 {
		t.Fatalf("k at version %d, want 2", ver)
	}
	wantRolledBack(t, s, stale, 2)
	wantRolledBack(t, s, readOnly, 2)
	blind.Put(mapA, []byte("k"), []byte("blind"))
	wantRolledBack(t, s, blind, 2)
	wantGet(t, s, mapA, "k", "2'", 2)
	// A transaction begun at or below the rollback point is validated as
	// usual: it read nothing that changed.
	if seqno := mustCommit(t, s, before); seqno != 3 {
		t.Fatalf("Commit = %d, want 3", seqno)
	}

	// Still refused once the seqnos it saw are committed again and
	// compacted past, and after a second rollback.
	doomed := s.Begin() // at 3
	mustRollback(t, s, 2)
	for range 4 {
		put(t, s, mapP, "p", "x")
	}
	s.Compact(5)
	mustRollback(t, s, 5)
	doomed.Put(mapP, []byte("p"), []byte("y"))
	wantRolledBack(t, s, doomed, 3)

	// Retry does not re-run a transaction refused for a rollback.
	calls := 0
	if err := Retry(context.Background(), 3, func() error { calls++; return &RolledBackError{ReadSeqno: 2} }); !errors.Is(err, ErrRolledBack) || calls != 1 {
		t.Errorf("Retry = %v after %d calls, want ErrRolledBack after 1", err, calls)
	}
	if want := "kv: transaction's snapshot at seqno 2 was rolled back; nothing applied"; (&RolledBackError{ReadSeqno: 2}).Error() != want {
		t.Errorf("message %q, want %q", &RolledBackError{ReadSeqno: 2}, want)
	}
}

func wantRollbackError(t *testing.T, s *Store, to ids.Seqno, sentinel error, msg string) {
	t.Helper()
	before := s.Seqno()
	err := s.Rollback(to)
	var re *RollbackError
	if !errors.Is(err, sentinel) || !errors.As(err, &re) || re.To != to || re.Seqno != before {
		t.Fatalf("Rollback(%d) = %v, want a RollbackError matching %v", to, err, sentinel)
	}
	if other := map[error]error{ErrSeqno: ErrCompacted, ErrCompacted: ErrSeqno}[sentinel]; errors.Is(err, other) {
		t.Fatalf("Rollback(%d) = %v also matches %v", to, err, other)
	}
	if err.Error() != msg {
		t.Errorf("message %q, want %q", err, msg)
	}
	if s.Seqno() != before {
		t.Fatalf("Seqno = %d after a refused Rollback, was %d", s.Seqno(), before)
	}
}

func TestCompact(t *testing.T) {
	s := NewStore()
	for range 10 {
		put(t, s, mapA, "k", "v")
	}
	wantRollbackError(t, s, 11, ErrSeqno, "kv: cannot roll back to seqno 11: the store is at 10")
	s.Compact(5)
	s.Compact(3) // lower: a no-op
	if s.compacted != 5 || s.history.first() != 5 || s.history.n != 6 {
		t.Fatalf("compacted %d, history holds %d states from %d; want 6 from 5", s.compacted, s.history.n, s.history.first())
	}
	wantRollbackError(t, s, 4, ErrCompacted, "kv: cannot roll back to seqno 4: compacted up to 5")
	mustRollback(t, s, 5) // the compaction point itself is kept
	wantGet(t, s, mapA, "k", "v", 5)

	// Beyond Seqno(): remembered, and applied as the store moves past it.
	s.Compact(8)
	if s.history.first() != 5 || s.history.n != 1 {
		t.Fatalf("history holds %d states from %d; want only 5", s.history.n, s.history.first())
	}
	wantRollbackError(t, s, 5, ErrCompacted, "kv: cannot roll back to seqno 5: compacted up to 8")
	for range 4 {
		put(t, s, mapA, "k", "w")
	}
	if s.history.first() != 8 || s.history.n != 2 {
		t.Fatalf("history holds %d states from %d; want 8 and 9", s.history.n, s.history.first())
	}
	wantRollbackError(t, s, 7, ErrCompacted, "kv: cannot roll back to seqno 7: compacted up to 8")
	mustRollback(t, s, 8)
}

// TestCompactBoundsMemory commits 100k transactions, compacting every 100
// as a node does when entries commit: the history stays within the window,
// and forgotten states are garbage.
func TestCompactBoundsMemory(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	const window = 100
	s := NewStore()
	put(t, s, mapA, "k", "1")
	first := weak.Make(s.cur.Load())
	value := make([]byte, 32)
	for i := range n {
		tx := s.Begin()
		k := key(i % 1000)
		tx.Get(mapA, k)
		tx.Put(mapA, k, value)
		seqno := mustCommit(t, s, tx)
		if seqno%window == 0 {
			s.Compact(seqno)
		}
		if s.history.n > window+1 || len(s.history.ring) > 2*window {
			t.Fatalf("at seqno %d the history holds %d states in %d slots", seqno, s.history.n, len(s.history.ring))
		}
	}
	runtime.GC()
	if first.Value() != nil {
		t.Fatal("the state at seqno 1 survived its compaction")
	}

	// A spike of the window grows the ring; compaction shrinks it back.
	for range 4 * shrinkAbove {
		put(t, s, mapA, "k", "v")
	}
	if len(s.history.ring) < 4*shrinkAbove {
		t.Fatalf("history of %d states in %d slots", s.history.n, len(s.history.ring))
	}
	s.Compact(s.Seqno())
	if len(s.history.ring) != shrinkAbove || s.history.n != 1 {
		t.Fatalf("history of %d states in %d slots after compaction, want 1 in %d", s.history.n, len(s.history.ring), shrinkAbove)
	}
}

// TestHistoryRing drives the ring buffer through growth, wrap-around and
// shrinking against a slice.
func TestHistoryRing(t *testing.T) {
	var h history
	var want []*state
	r := rand.New(rand.NewPCG(7, 7))
	next := ids.Seqno(0)
	grown, shrunk := 0, 0
	for step := range 6000 {
		// Every other 1000 steps, a spike: the window grows well beyond
		// shrinkAbove, and collapses in the steps that follow.
		spike := step/1000%2 == 1
		burst, drop := 3, func() int { return r.IntN(len(want)) } // keep at least one
		if spike {
			burst, drop = 40, func() int { return r.IntN(min(len(want), 4)) }
		}
		size := len(h.ring)
		switch op := r.IntN(10); {
		case op < 6 || len(want) == 0:
			for range 1 + r.IntN(burst) {
				st := &state{seqno: next}
				next++
				h.push(st)
				want = append(want, st)
			}
		case op < 8:
			k := drop()
			h.dropBefore(want[k].seqno)
			clear(want[:k])
			want = want[k:]
		default:
			for range drop() {
				if h.pop() != want[len(want)-1] {
					t.Fatalf("step %d: pop returned the wrong state", step)
				}
				want = want[:len(want)-1]
			}
			next = want[len(want)-1].seqno + 1
		}
		switch {
		case len(h.ring) > size && len(h.ring) > shrinkAbove:
			grown++
		case len(h.ring) < size:
			shrunk++
		}
		if h.n != len(want) || h.first() != want[0].seqno || h.newest() != want[len(want)-1] || len(h.ring)&(len(h.ring)-1) != 0 {
			t.Fatalf("step %d: ring of %d slots holds %d states from %d, want %d from %d", step, len(h.ring), h.n, h.first(), len(want), want[0].seqno)
		}
		if len(h.ring) > max(minHistory, shrinkAbove, 4*len(want)) {
			t.Fatalf("step %d: %d slots for %d states", step, len(h.ring), len(want))
		}
		for i, st := range want {
			if h.at(st.seqno) != st || h.ring[h.slot(i)] != st {
				t.Fatalf("step %d: state %d misplaced", step, st.seqno)
			}
		}
		if h.at(want[0].seqno-1) != nil && want[0].seqno > 0 || h.at(next) != nil {
			t.Fatalf("step %d: at() beyond the history returned a state", step)
		}
		for i := h.n; i < len(h.ring); i++ {
			if h.ring[h.slot(i)] != nil {
				t.Fatalf("step %d: free slot holds a state", step)
			}
		}
	}
	if grown == 0 || shrunk == 0 {
		t.Fatalf("the ring grew beyond shrinkAbove %d times and shrank %d times", grown, shrunk)
	}
}

// TestRollbackConcurrentReaders runs readers and committers against a
// writer that rolls back and compacts, for the race detector and for
// snapshot consistency: every commit writes a and b equal, so every snapshot
// must read them equal.
func TestRollbackConcurrentReaders(t *testing.T) {
	const readers, rounds = 4, 1000
	s := NewStore()
	put(t, s, mapA, "a", "0", "b", "0")
	var (
		wg   sync.WaitGroup
		stop = make(chan struct{})
		errs = make(chan error, readers+1)
	)
	for w := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tx := s.Begin()
				a, _ := tx.Get(mapA, []byte("a"))
				items, _ := tx.Scan(mapA, []byte("b"), []byte("c"), 0)
				if len(items) != 1 || string(items[0].Value) != string(a) {
					errs <- fmt.Errorf("snapshot %d: a = %q, b = %s", tx.ReadSeqno(), a, fmtItems(items))
					return
				}
				if i%2 == 0 {
					v := []byte(fmt.Sprint("r", w, ".", i))
					tx.Put(mapA, []byte("a"), v)
					tx.Put(mapA, []byte("b"), v)
				}
				if _, err := s.Commit(tx, nil); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrRolledBack) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(stop)
		r := rand.New(rand.NewPCG(8, 8))
		for i := range rounds {
			tx := s.Begin()
			v := []byte(fmt.Sprint("w", i))
			tx.Put(mapA, []byte("a"), v)
			tx.Put(mapA, []byte("b"), v)
			if _, err := s.Commit(tx, nil); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrRolledBack) {
				errs <- err
				return
			}
			switch r.IntN(4) {
			case 0:
				seqno := s.Seqno()
				to := seqno - min(seqno, ids.Seqno(r.IntN(4)))
				if err := s.Rollback(to); err != nil && !errors.Is(err, ErrCompacted) && !errors.Is(err, ErrSeqno) {
					errs <- err
					return
				}
			case 1:
				seqno := s.Seqno()
				s.Compact(seqno - min(seqno, ids.Seqno(r.IntN(8))))
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a, _, _ := s.Get(mapA, []byte("a"))
	b, _, _ := s.Get(mapA, []byte("b"))
	if string(a) != string(b) {
		t.Fatalf("a = %q, b = %q", a, b)
	}
}
