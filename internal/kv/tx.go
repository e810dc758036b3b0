package kv

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/btree"

	"github.com/cocoledger/coco/internal/ids"
)

// bufDegree is the B-tree degree of a transaction's write buffer. Buffers
// are private and short-lived, so it only trades per-Put node shifting
// against depth.
const bufDegree = 16

func lessWrite(a, b Write) bool { return bytes.Compare(a.Key, b.Key) < 0 }

// Tx is one transaction: reads from an immutable snapshot, buffered writes,
// and the read set that Commit validates. A Tx is used by one goroutine at a
// time. Returned keys and values are shared with the store and must not be
// modified. A Tx needs no cleanup: an abandoned Tx is garbage.
type Tx struct {
	store *Store
	snap  *state

	// Per-map state in first-use order, which makes validation report the
	// same conflict on every run. Most transactions touch a few maps, found
	// faster by a linear search than by hashing; index takes over beyond
	// linearMaps.
	list  []*txMap
	index map[MapName]*txMap

	wrote bool  // some Put or Delete was buffered
	err   error // first rejected Put or Delete
	done  bool  // Commit was called

	probe Item // search key for lookup
}

type txMap struct {
	name   MapName
	snap   *tree                // this map at the snapshot; nil if absent
	writes *btree.BTreeG[Write] // nil until the first write
	reads  []pointRead
	ranges []rangeRead
}

// pointRead records that key had version (0: absent) at the snapshot.
type pointRead struct {
	key     []byte
	version ids.Seqno
}

// rangeRead records that [start, end) (end nil: unbounded) held count keys
// at the snapshot. As every version is a seqno, the range is unchanged at
// commit iff it still holds count keys and none newer than the snapshot:
// keys present now with older versions were there at the snapshot.
type rangeRead struct {
	start, end []byte
	count      int
}

// Begin starts a transaction on a snapshot of the latest state. It is O(1)
// and takes no lock.
func (s *Store) Begin() *Tx { return &Tx{store: s, snap: s.cur.Load()} }

// ReadSeqno returns the seqno of the transaction's snapshot.
func (tx *Tx) ReadSeqno() ids.Seqno { return tx.snap.seqno }

// Err returns the first Put or Delete the transaction rejected, nil if none.
// Commit returns the same error.
func (tx *Tx) Err() error { return tx.err }

// HasWrites reports whether the transaction buffered any Put or Delete.
func (tx *Tx) HasWrites() bool { return tx.wrote }

const linearMaps = 8

func (tx *Tx) mapFor(m MapName) *txMap {
	if tx.index != nil {
		if tm, ok := tx.index[m]; ok {
			return tm
		}
	} else {
		for _, tm := range tx.list {
			if tm.name == m {
				return tm
			}
		}
	}
	tm := &txMap{name: m, snap: tx.snap.tree(m)}
	tx.list = append(tx.list, tm)
	switch {
	case tx.index != nil:
		tx.index[m] = tm
	case len(tx.list) > linearMaps:
		tx.index = make(map[MapName]*txMap, 2*len(tx.list))
		for _, tm := range tx.list {
			tx.index[tm.name] = tm
		}
	}
	return tm
}

// Get returns key's value as the transaction sees it: its own latest write,
// else the snapshot. Reads served by the snapshot, including those that find
// nothing, join the read set; it never allocates for a key that exists.
func (tx *Tx) Get(m MapName, key []byte) ([]byte, bool) {
	tm := tx.mapFor(m)
	if tm.writes != nil {
		if w, ok := tm.writes.Get(Write{Key: key}); ok {
			return w.Value, !w.Deleted
		}
	}
	if tm.snap != nil {
		if it, ok := tx.lookup(tm.snap, key); ok {
			// The stored key is immutable, so the read set can share it.
			tm.reads = append(tm.reads, pointRead{key: it.Key, version: it.Version})
			return it.Value, true
		}
	}
	tm.reads = append(tm.reads, pointRead{key: bytes.Clone(key)})
	return nil, false
}

// lookup finds key in t without allocating: the probe lives in the Tx,
// already on the heap, whereas a fresh &Item would escape through btree's
// less callback.
func (tx *Tx) lookup(t *tree, key []byte) (*Item, bool) {
	tx.probe.Key = key
	it, ok := t.Get(&tx.probe)
	tx.probe.Key = nil // do not retain the caller's buffer
	return it, ok
}

// Put buffers key = value, copying both. An invalid map name, key or value
// (see ValidateMapName, ValidateKey, ValidateValue) is not buffered: the
// first such error is kept in Err and fails Commit, so handlers can write
// unchecked and still never commit half of what they meant to.
func (tx *Tx) Put(m MapName, key, value []byte) {
	if !tx.check(m, key, value, "Put") {
		return
	}
	// One allocation for both; capped so appending to the key cannot reach
	// the value.
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	tx.write(m, Write{Key: buf[:len(key):len(key)], Value: buf[len(key):]})
}

// Delete buffers the removal of key, copying it; deleting an absent key is
// a valid write. Invalid arguments are handled as in Put.
func (tx *Tx) Delete(m MapName, key []byte) {
	if !tx.check(m, key, nil, "Delete") {
		return
	}
	tx.write(m, Write{Key: bytes.Clone(key), Deleted: true})
}

func (tx *Tx) check(m MapName, key, value []byte, op string) bool {
	err := ValidateMapName(m)
	if err == nil {
		err = ValidateKey(key)
	}
	if err == nil {
		err = ValidateValue(value)
	}
	if err == nil {
		return true
	}
	if tx.err == nil {
		tx.err = fmt.Errorf("%w (%s to map %q, key %s)", err, op, m, quoteKey(key))
	}
	return false
}

func (tx *Tx) write(m MapName, w Write) {
	tm := tx.mapFor(m)
	if tm.writes == nil {
		tm.writes = btree.NewG(bufDegree, lessWrite)
	}
	tm.writes.ReplaceOrInsert(w)
	tx.wrote = true
}

// WriteSet returns the transaction's buffered writes in canonical order.
// It reflects the writes made so far and shares their keys and values.
func (tx *Tx) WriteSet() *WriteSet {
	ws := &WriteSet{}
	for _, tm := range tx.list {
		if tm.writes == nil {
			continue
		}
		mw := MapWrites{Name: tm.name, Writes: make([]Write, 0, tm.writes.Len())}
		tm.writes.Ascend(func(w Write) bool {
			mw.Writes = append(mw.Writes, w)
			return true
		})
		ws.Maps = append(ws.Maps, mw)
	}
	slices.SortFunc(ws.Maps, func(a, b MapWrites) int { return cmp.Compare(a.Name, b.Name) })
	return ws
}

// Scan returns, in key order, up to limit items (limit <= 0: no limit) of
// [start, end) as the transaction sees it (nil start: from the first key;
// nil end: unbounded), merging its own writes, whose Version is 0. next is
// the key to pass as start to continue, nil when the range is exhausted.
//
// The read set gains the range [start, next) (or [start, end) when
// exhausted): the scan observed that exactly these keys lie there, and that
// next exists. Keys at or beyond next can change without a conflict.
func (tx *Tx) Scan(m MapName, start, end []byte, limit int) (items []Item, next []byte) {
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil, nil
	}
	tm := tx.mapFor(m)
	sc := scanner{limit: limit, buf: cursor{t: tm.writes, from: start, end: end}}
	if limit > 0 {
		sc.items = make([]Item, 0, min(limit, maxScanPrealloc))
	}
	if tm.snap != nil {
		ascend(tm.snap, start, end, sc.snapItem)
	}
	if sc.next == nil {
		sc.drain()
	}
	cover := rangeRead{start: bytes.Clone(start), end: bytes.Clone(end), count: sc.count}
	if sc.next != nil {
		// Stored keys are immutable; the read set can share next.
		cover.end = sc.next
	}
	tm.ranges = append(tm.ranges, cover)
	return sc.items, sc.next
}

// maxScanPrealloc caps the room Scan reserves for its result, so that a huge
// limit on a small range does not allocate for items that do not exist.
const maxScanPrealloc = 256

// ascend calls f on t's items in [start, end) in order until f returns false.
func ascend(t *tree, start, end []byte, f func(*Item) bool) {
	if end == nil {
		t.AscendGreaterOrEqual(&Item{Key: start}, f)
	} else {
		t.AscendRange(&Item{Key: start}, &Item{Key: end}, f)
	}
}

// scanner merges the snapshot's items (pushed by ascend) with the
// transaction's buffered writes (pulled from buf).
type scanner struct {
	limit int
	buf   cursor
	items []Item
	next  []byte
	count int // snapshot items before next: the range read's size
}

// emit adds an item to the result, or, when the result is full, makes key
// next and returns false to stop.
func (sc *scanner) emit(key, value []byte, v ids.Seqno) bool {
	if sc.limit > 0 && len(sc.items) == sc.limit {
		sc.next = key
		return false
	}
	sc.items = append(sc.items, Item{Key: key, Value: value, Version: v})
	return true
}

func (sc *scanner) snapItem(it *Item) bool {
	for {
		w, ok := sc.buf.peek()
		if !ok || bytes.Compare(w.Key, it.Key) > 0 {
			break
		}
		sc.buf.pop()
		if bytes.Equal(w.Key, it.Key) {
			// The buffered write shadows this snapshot item. It is still
			// counted: the read set covers the snapshot's range, not the
			// merged view (see rangeRead).
			if !w.Deleted && !sc.emit(w.Key, w.Value, 0) {
				return false
			}
			sc.count++
			return true
		}
		if !w.Deleted && !sc.emit(w.Key, w.Value, 0) {
			return false
		}
	}
	if !sc.emit(it.Key, it.Value, it.Version) {
		return false
	}
	sc.count++
	return true
}

// drain emits the buffered writes left after the last snapshot item.
func (sc *scanner) drain() {
	for {
		w, ok := sc.buf.peek()
		if !ok {
			return
		}
		sc.buf.pop()
		if !w.Deleted && !sc.emit(w.Key, w.Value, 0) {
			return
		}
	}
}

// cursor pulls a write buffer's entries in [from, end) in order, a chunk at
// a time, so that a scan with a small limit costs little even when the
// transaction has buffered many writes in the range.
type cursor struct {
	t        *btree.BTreeG[Write] // nil: no writes
	from     []byte               // the next chunk starts here
	end      []byte
	skipFrom bool // from was the previous chunk's last key
	chunk    []Write
	pos      int
	done     bool // the chunk holds the last entries
}

const cursorChunk = 32

func (c *cursor) peek() (Write, bool) {
	if c.pos == len(c.chunk) && !c.done {
		c.fill()
	}
	if c.pos == len(c.chunk) {
		return Write{}, false
	}
	return c.chunk[c.pos], true
}

func (c *cursor) pop() { c.pos++ }

func (c *cursor) fill() {
	c.chunk, c.pos = c.chunk[:0], 0
	if c.t == nil {
		c.done = true
		return
	}
	f := func(w Write) bool {
		if c.skipFrom && bytes.Equal(w.Key, c.from) {
			return true
		}
		c.chunk = append(c.chunk, w)
		return len(c.chunk) < cursorChunk
	}
	if c.end == nil {
		c.t.AscendGreaterOrEqual(Write{Key: c.from}, f)
	} else {
		c.t.AscendRange(Write{Key: c.from}, Write{Key: c.end}, f)
	}
	if len(c.chunk) < cursorChunk {
		c.done = true
		return
	}
	c.from, c.skipFrom = c.chunk[len(c.chunk)-1].Key, true
}

// validate reports the first read that changed between tx's snapshot and
// cur. A map whose tree is the same pointer in both is unchanged, since
// commits replace exactly the trees they write.
func (tx *Tx) validate(cur *state) error {
	for _, tm := range tx.list {
		now := cur.tree(tm.name)
		if now == tm.snap {
			continue
		}
		for _, r := range tm.reads {
			var v ids.Seqno
			if now != nil {
				if it, ok := tx.lookup(now, r.key); ok {
					v = it.Version
				}
			}
			if v != r.version {
				return &ConflictError{Map: tm.name, ReadSeqno: tx.snap.seqno, Key: r.key, Seen: r.version, Now: v}
			}
		}
		for _, r := range tm.ranges {
			if err := tx.validateRange(tm.name, now, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (tx *Tx) validateRange(m MapName, now *tree, r rangeRead) error {
	n := 0
	var changed *Item
	if now != nil {
		ascend(now, r.start, r.end, func(it *Item) bool {
			if it.Version > tx.snap.seqno {
				changed = it
				return false
			}
			n++
			return true
		})
	}
	if changed == nil && n == r.count {
		return nil
	}
	e := &ConflictError{Map: m, ReadSeqno: tx.snap.seqno, Range: true, Start: r.start, End: r.end, SeenCount: r.count, NowCount: n}
	if changed != nil {
		e.Key, e.Now, e.NowCount = changed.Key, changed.Version, 0
	}
	return e
}

// Retry runs run until it returns anything but an ErrConflict, at most
// attempts times (at least once), and stops early once ctx is done. It is
// the loop a handler runner wraps around Begin, handler and Commit.
func Retry(ctx context.Context, attempts int, run func() error) error {
	var err error
	for i := 0; i == 0 || i < attempts; i++ {
		if cerr := ctx.Err(); cerr != nil {
			if err != nil {
				return fmt.Errorf("kv: retry stopped after %d attempts: %w (last attempt: %w)", i, cerr, err)
			}
			return fmt.Errorf("kv: retry stopped before the first attempt: %w", cerr)
		}
		if err = run(); !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("kv: gave up after %d conflicting attempts: %w", max(attempts, 1), err)
}
