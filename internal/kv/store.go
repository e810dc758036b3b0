package kv

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/google/btree"

	"github.com/cocoledger/coco/internal/ids"
)

// degree is the B-tree degree of the store's maps: nodes hold degree-1 to
// 2*degree-1 items. A commit copies one node per level, so smaller nodes
// copy less per write while larger ones make the tree shallower for reads.
// BenchmarkCommitOneKey chose it among 6 to 64.
const degree = 32

// tree is one map's version: an immutable once published, copy-on-write
// B-tree of items ordered by key. It holds pointers rather than 56-byte
// Items because every commit copies one node per level: 8-byte slots make
// that copy, and the garbage it leaves, several times smaller (measured 25%
// faster commits at 1M keys), for one more indirection per comparison.
type tree = btree.BTreeG[*Item]

func lessItem(a, b *Item) bool { return bytes.Compare(a.Key, b.Key) < 0 }

// probes lends search keys to Store.Get: a fresh &Item would escape through
// btree's less callback and cost an allocation per read.
var probes = sync.Pool{New: func() any { return new(Item) }}

// namedTree is one entry of a state's directory of maps.
type namedTree struct {
	name MapName
	t    *tree
}

func lessNamed(a, b namedTree) bool { return a.name < b.name }

// state is one published version of the whole store. It is immutable, but
// for its dropped flag: a commit builds a new state that shares every
// untouched map (and every untouched node of the maps it touches) with its
// predecessor.
type state struct {
	seqno ids.Seqno
	// maps holds only non-empty maps, so an absent map and an empty one are
	// the same thing and two equal stores have equal directories.
	maps *btree.BTreeG[namedTree]
	// dropped is set, under mu, when Rollback removes this state from the
	// store's history; it is never cleared. Commit reads it to refuse the
	// transactions begun on such a state (see Rollback).
	dropped atomic.Bool
}

func (st *state) tree(m MapName) *tree {
	nt, ok := st.maps.Get(namedTree{name: m})
	if !ok {
		return nil
	}
	return nt.t
}

// Item is one stored key, its value and its version: the seqno of the entry
// that last wrote it.
type Item struct {
	Key, Value []byte
	Version    ids.Seqno
}

// Store is the in-memory MVCC store. Readers never lock: Begin and Get load
// the current state with one atomic read. Commit, Sequence, Apply and
// Rollback are serialised by one mutex, with Compact, and publish a new
// state atomically.
type Store struct {
	// mu serialises the writers (Commit, Sequence, Apply, Rollback,
	// Compact): the seqno they assign, their seal callbacks, the history,
	// and every Clone and mutation of a tree (btree's Clone must not run
	// concurrently with itself).
	mu  sync.Mutex
	cur atomic.Pointer[state]

	// history holds the states Rollback can restore, those at seqnos
	// [min(compacted, Seqno()), Seqno()]; its newest is cur. compacted is
	// the highest seqno given to Compact. Both are used only under mu.
	history   history
	compacted ids.Seqno

	// Node free lists shared by all versions; used only under mu.
	itemNodes *btree.FreeListG[*Item]
	dirNodes  *btree.FreeListG[namedTree]
}

// NewStore returns an empty store at seqno 0.
func NewStore() *Store {
	s := &Store{
		itemNodes: btree.NewFreeListG[*Item](btree.DefaultFreeListSize),
		dirNodes:  btree.NewFreeListG[namedTree](btree.DefaultFreeListSize),
	}
	s.publish(&state{maps: btree.NewWithFreeListG(degree, lessNamed, s.dirNodes)})
	return s
}

// Seqno returns the seqno of the latest applied state, 0 when nothing has
// been applied.
func (s *Store) Seqno() ids.Seqno { return s.cur.Load().seqno }

// Get reads key from the latest state without a transaction: its value,
// version and whether it exists. It records no read, so its result may be
// stale by the time it returns; it never allocates. The value is shared
// with the store and must not be modified.
func (s *Store) Get(m MapName, key []byte) ([]byte, ids.Seqno, bool) {
	t := s.cur.Load().tree(m)
	if t == nil {
		return nil, 0, false
	}
	probe := probes.Get().(*Item)
	probe.Key = key
	it, ok := t.Get(probe)
	probe.Key = nil // do not retain the caller's buffer
	probes.Put(probe)
	if !ok {
		return nil, 0, false
	}
	return it.Value, it.Version, true
}

// Commit validates tx's reads, assigns it seqno Seqno()+1, calls seal(seqno,
// ws) and, if seal succeeds, applies the write set at version seqno and
// publishes it. All of this happens under the store's commit mutex, so seals
// run one at a time in seqno order; seal may be nil, and must not call
// Commit, Sequence, Apply, Rollback or Compact, which would deadlock.
//
// Commit fails, applying nothing, with the error of tx's first rejected Put
// or Delete (see Tx.Err), with a *RolledBackError if Rollback dropped tx's
// snapshot, with a *ConflictError if something tx read changed since its
// snapshot, or with seal's error wrapped. A Tx commits at most once,
// whatever the outcome: later calls fail with ErrTxDone. A Tx without writes
// commits trivially at its snapshot: no validation (its reads are one
// consistent snapshot), no seal, no seqno; Commit returns tx.ReadSeqno(),
// unless its snapshot was already rolled back.
//
// ws is shared with the store: seal must not modify or retain it beyond
// encoding it.
func (s *Store) Commit(tx *Tx, seal func(seqno ids.Seqno, ws *WriteSet) error) (ids.Seqno, error) {
	if tx.store != s {
		return 0, ErrForeignTx
	}
	if tx.done {
		return 0, ErrTxDone
	}
	tx.done = true
	if tx.err != nil {
		return 0, tx.err
	}
	if !tx.wrote {
		if tx.snap.dropped.Load() {
			return 0, &RolledBackError{ReadSeqno: tx.snap.seqno}
		}
		return tx.snap.seqno, nil
	}
	// Built before taking the mutex: sorting and copying is the committer's
	// own work and needs no serialisation.
	ws := tx.WriteSet()

	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	if cur != tx.snap {
		// The latest state is never dropped, so a transaction whose
		// snapshot is still the latest needs neither check.
		if tx.snap.dropped.Load() {
			return 0, &RolledBackError{ReadSeqno: tx.snap.seqno}
		}
		if err := tx.validate(cur); err != nil {
			return 0, err
		}
	}
	seqno := cur.seqno + 1
	if seal != nil {
		if err := seal(seqno, ws); err != nil {
			return 0, fmt.Errorf("kv: seal of seqno %d failed, nothing applied: %w", seqno, err)
		}
	}
	s.publish(s.apply(cur, seqno, ws))
	return seqno, nil
}

// Sequence assigns seqno Seqno()+1 to an entry that writes nothing to the
// store, such as a signature, with the same mutex and ordering as Commit:
// seal(seqno) runs under the mutex and, if it fails, the seqno is not used
// and its error is returned wrapped. seal may be nil.
func (s *Store) Sequence(seal func(seqno ids.Seqno) error) (ids.Seqno, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	seqno := cur.seqno + 1
	if seal != nil {
		if err := seal(seqno); err != nil {
			return 0, fmt.Errorf("kv: seal of seqno %d failed, nothing applied: %w", seqno, err)
		}
	}
	s.publish(&state{seqno: seqno, maps: cur.maps})
	return seqno, nil
}

// Apply applies ws, which may be nil or empty, at exactly seqno ==
// Seqno()+1, without validation: for replaying the ledger and for backups
// applying replicated entries. It fails with a *SeqnoError for any other
// seqno and with ErrInvalidWriteSet if ws breaks its invariants, applying
// nothing. The store keeps ws's keys and values: ws must not be modified
// afterwards (DecodeWriteSet's results are safe to pass).
func (s *Store) Apply(seqno ids.Seqno, ws *WriteSet) error {
	if err := ws.Validate(); err != nil {
		return fmt.Errorf("kv: apply seqno %d: %w", seqno, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	if want := cur.seqno + 1; seqno != want {
		return &SeqnoError{Got: seqno, Want: want}
	}
	s.publish(s.apply(cur, seqno, ws))
	return nil
}

// Rollback restores the state published at seqno to, dropping every later
// state, so that Seqno() == to and the next Commit, Sequence or Apply uses
// seqno to+1: raft calls it when it replaces the uncommitted suffix of the
// log. It fails, changing nothing, with a *RollbackError matching
// ErrCompacted if to is below the compaction point (see Compact) and
// ErrSeqno if to > Seqno(). Rollback(Seqno()) changes nothing.
//
// Transactions keep reading their snapshots, but one whose snapshot was
// dropped cannot commit: its Commit fails with a *RolledBackError, even if
// it wrote nothing. Its reads may have versions that later commits reuse
// for other contents, so validation alone could not tell that they
// changed. Rollback runs under the commit mutex and costs O(states dropped).
func (s *Store) Rollback(to ids.Seqno) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	if to > cur.seqno || to < s.compacted {
		return &RollbackError{To: to, Seqno: cur.seqno, Compacted: s.compacted}
	}
	// Mark before unpublishing: a Begin racing with Rollback gets either a
	// state that is already marked or the restored one.
	for s.history.newest().seqno > to {
		s.history.pop().dropped.Store(true)
	}
	s.cur.Store(s.history.newest())
	return nil
}

// Compact lets the store forget the states older than seqno, normally the
// committed seqno: afterwards Rollback can restore seqno but no earlier
// state. It is monotonic: a seqno at or below an earlier one changes
// nothing. A seqno beyond Seqno() is remembered: the states up to it are
// forgotten as they are superseded. Compact runs under the commit mutex and
// costs O(states forgotten); it bounds the store's memory by the states of
// the uncommitted window (plus those that open transactions hold), so a
// node must call it as entries commit.
func (s *Store) Compact(seqno ids.Seqno) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seqno <= s.compacted {
		return
	}
	s.compacted = seqno
	s.history.dropBefore(min(seqno, s.cur.Load().seqno))
}

// publish makes st, whose seqno is Seqno()+1 (0 for the first state), the
// latest state and records it in the history. Callers hold mu (NewStore:
// or own the store alone).
func (s *Store) publish(st *state) {
	s.history.push(st)
	if s.history.first() < s.compacted {
		s.history.dropBefore(min(s.compacted, st.seqno))
	}
	s.cur.Store(st)
}

// apply returns cur with ws applied at version seqno. It clones only the
// directory and the maps ws writes; cur stays valid and unchanged for the
// snapshots that hold it. Callers hold mu and have validated ws.
func (s *Store) apply(cur *state, seqno ids.Seqno, ws *WriteSet) *state {
	next := &state{seqno: seqno, maps: cur.maps}
	if ws.Empty() {
		return next
	}
	next.maps = cow(cur.maps)
	for _, mw := range ws.Maps {
		var t *tree
		if old := cur.tree(mw.Name); old != nil {
			t = cow(old)
		} else {
			t = btree.NewWithFreeListG(degree, lessItem, s.itemNodes)
		}
		for _, w := range mw.Writes {
			if w.Deleted {
				t.Delete(&Item{Key: w.Key})
			} else {
				t.ReplaceOrInsert(&Item{Key: w.Key, Value: w.Value, Version: seqno})
			}
		}
		if t.Len() == 0 {
			next.maps.Delete(namedTree{name: mw.Name})
		} else {
			next.maps.ReplaceOrInsert(namedTree{name: mw.Name, t: t})
		}
	}
	return next
}

// cow returns a writable copy-on-write clone of the published tree t
// without writing to t. btree's Clone assigns a fresh context to its
// receiver as well as to the clone; cloning a private copy of the header
// keeps the published header, which readers load concurrently, untouched.
// Nodes stay owned by t's old context, so no later write through any clone
// modifies them.
func cow[T any](t *btree.BTreeG[T]) *btree.BTreeG[T] {
	shadow := *t
	return shadow.Clone()
}
