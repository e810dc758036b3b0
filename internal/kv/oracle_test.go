package kv

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
)

// This file holds the slow oracle: a naive model of the store (plain Go
// maps, a full copy of the whole state per seqno, sorting on every scan,
// read sets compared as exact key→version maps, rollback by truncating the
// list of states) and a driver that runs the same operation sequence
// against the Store and the model, comparing every result and every commit
// outcome.

type mItem struct {
	value   []byte
	version ids.Seqno
}

type mState map[MapName]map[string]mItem

type mWrite struct {
	value   []byte
	deleted bool
}

type mPoint struct {
	m       MapName
	key     string
	version ids.Seqno
}

// mRange is the model's range read: every snapshot item of [start, end).
type mRange struct {
	m          MapName
	start, end []byte
	seen       map[string]ids.Seqno
}

type mTx struct {
	snap    ids.Seqno
	state   mState // the state at snap, kept even if a rollback drops it
	dropped bool   // a rollback dropped snap
	writes  map[MapName]map[string]mWrite
	points  []mPoint
	ranges  []mRange
}

type model struct {
	states    []mState // states[s] is the state at seqno s
	compacted ids.Seqno
	open      []*mTx // transactions not committed yet
}

func newModel() *model { return &model{states: []mState{{}}} }

func (md *model) seqno() ids.Seqno { return ids.Seqno(len(md.states) - 1) }
func (md *model) latest() mState   { return md.states[len(md.states)-1] }

func (md *model) begin() *mTx {
	tx := &mTx{snap: md.seqno(), state: md.latest(), writes: map[MapName]map[string]mWrite{}}
	md.open = append(md.open, tx)
	return tx
}

func (md *model) get(tx *mTx, m MapName, key []byte) ([]byte, bool) {
	if w, ok := tx.writes[m][string(key)]; ok {
		return w.value, !w.deleted
	}
	it, ok := tx.state[m][string(key)]
	tx.points = append(tx.points, mPoint{m: m, key: string(key), version: it.version})
	return it.value, ok
}

func (tx *mTx) put(m MapName, key, value []byte, deleted bool) {
	if tx.writes[m] == nil {
		tx.writes[m] = map[string]mWrite{}
	}
	tx.writes[m][string(key)] = mWrite{value: bytes.Clone(value), deleted: deleted}
}

func inRange(k string, start, end []byte) bool {
	return bytes.Compare([]byte(k), start) >= 0 && (end == nil || bytes.Compare([]byte(k), end) < 0)
}

func (md *model) scan(tx *mTx, m MapName, start, end []byte, limit int) ([]Item, []byte) {
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil, nil
	}
	snap := tx.state[m]
	view := map[string]Item{}
	for k, it := range snap {
		view[k] = Item{Key: []byte(k), Value: it.value, Version: it.version}
	}
	for k, w := range tx.writes[m] {
		if w.deleted {
			delete(view, k)
		} else {
			view[k] = Item{Key: []byte(k), Value: w.value}
		}
	}
	var keys []string
	for k := range view {
		if inRange(k, start, end) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var items []Item
	var next []byte
	for _, k := range keys {
		if limit > 0 && len(items) == limit {
			next = []byte(k)
			break
		}
		items = append(items, view[k])
	}
	coverEnd := end
	if next != nil {
		coverEnd = next
	}
	seen := map[string]ids.Seqno{}
	for k, it := range snap {
		if inRange(k, start, coverEnd) {
			seen[k] = it.version
		}
	}
	tx.ranges = append(tx.ranges, mRange{m: m, start: bytes.Clone(start), end: bytes.Clone(coverEnd), seen: seen})
	return items, next
}

func (tx *mTx) hasWrites() bool { return len(tx.writes) > 0 }

// writeSet is the model's expected write set.
func (tx *mTx) writeSet() *WriteSet {
	ws := &WriteSet{}
	for _, m := range slices.Sorted(maps.Keys(tx.writes)) {
		mw := MapWrites{Name: m}
		for _, k := range slices.Sorted(maps.Keys(tx.writes[m])) {
			w := tx.writes[m][k]
			mw.Writes = append(mw.Writes, Write{Key: []byte(k), Value: w.value, Deleted: w.deleted})
		}
		ws.Maps = append(ws.Maps, mw)
	}
	return ws
}

// valid reports whether every read of tx would read the same at the latest
// state.
func (md *model) valid(tx *mTx) bool {
	cur := md.latest()
	for _, p := range tx.points {
		if cur[p.m][p.key].version != p.version {
			return false
		}
	}
	for _, r := range tx.ranges {
		now := map[string]ids.Seqno{}
		for k, it := range cur[r.m] {
			if inRange(k, r.start, r.end) {
				now[k] = it.version
			}
		}
		if !maps.Equal(now, r.seen) {
			return false
		}
	}
	return true
}

// apply appends a deep copy of the latest state with ws applied.
func (md *model) apply(ws *WriteSet) {
	seqno := md.seqno() + 1
	next := mState{}
	for m, kv := range md.latest() {
		next[m] = maps.Clone(kv)
	}
	for _, mw := range ws.maps() {
		if next[mw.Name] == nil {
			next[mw.Name] = map[string]mItem{}
		}
		for _, w := range mw.Writes {
			if w.Deleted {
				delete(next[mw.Name], string(w.Key))
			} else {
				next[mw.Name][string(w.Key)] = mItem{value: bytes.Clone(w.Value), version: seqno}
			}
		}
		if len(next[mw.Name]) == 0 {
			delete(next, mw.Name)
		}
	}
	md.states = append(md.states, next)
}

// commit returns the seqno, or the error Commit must match: ErrRolledBack
// if a rollback dropped tx's snapshot, else ErrConflict if its reads
// changed.
func (md *model) commit(tx *mTx) (ids.Seqno, error) {
	md.open = slices.DeleteFunc(md.open, func(o *mTx) bool { return o == tx })
	switch {
	case tx.dropped:
		return 0, ErrRolledBack
	case !tx.hasWrites():
		return tx.snap, nil
	case !md.valid(tx):
		return 0, ErrConflict
	}
	md.apply(tx.writeSet())
	return md.seqno(), nil
}

// rollback returns the error Rollback(to) must match, or nil after
// dropping the states after to and marking the transactions begun on them.
func (md *model) rollback(to ids.Seqno) error {
	switch {
	case to > md.seqno():
		return ErrSeqno
	case to < md.compacted:
		return ErrCompacted
	}
	md.states = md.states[:to+1]
	for _, tx := range md.open {
		if tx.snap > to {
			tx.dropped = true
		}
	}
	return nil
}

// chooser is the driver's source of decisions: seeded rand or fuzz input.
type chooser interface {
	intn(n int) int // in [0, n)
	more() bool
}

type randChooser struct {
	r    *rand.Rand
	left int
}

func (c *randChooser) intn(n int) int { return c.r.IntN(n) }
func (c *randChooser) more() bool     { c.left--; return c.left >= 0 }

// byteChooser turns fuzz input into decisions; it ends with the input.
type byteChooser struct{ b []byte }

func (c *byteChooser) intn(n int) int {
	if len(c.b) == 0 {
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v % n
}
func (c *byteChooser) more() bool { return len(c.b) > 0 }

var oracleMaps = []MapName{"a", "public:b", "c"}

// oracleKey draws from a small universe ("", 1 and 2 letters of a–d) so
// that transactions collide often.
func oracleKey(c chooser) []byte {
	k := make([]byte, c.intn(3))
	for i := range k {
		k[i] = 'a' + byte(c.intn(4))
	}
	return k
}

func oracleBound(c chooser) []byte {
	if c.intn(4) == 0 {
		return nil
	}
	return oracleKey(c)
}

type pair struct {
	tx *Tx
	m  *mTx
}

// oracleStats counts outcomes, so callers can check that a sequence
// exercised each of them.
type oracleStats struct {
	commits, conflicts int
	rollbacks          int // successful ones
	refused            int // rollbacks refused: compacted or beyond Seqno
	stale              int // commits refused because of a rollback
}

// runOracle drives s and a model with the same operations and fails t at
// the first difference.
func runOracle(t testing.TB, c chooser) (st oracleStats) {
	s, md := NewStore(), newModel()
	var open []pair
	step := 0
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d: "+format, append([]any{step}, args...)...)
	}
	for ; c.more(); step++ {
		checkHistory(t, step, s, md, false)
		op := c.intn(22)
		if len(open) == 0 || op == 0 && len(open) < 5 {
			open = append(open, pair{s.Begin(), md.begin()})
			if open[len(open)-1].tx.ReadSeqno() != md.seqno() {
				fail("Begin at seqno %d, model at %d", open[len(open)-1].tx.ReadSeqno(), md.seqno())
			}
			continue
		}
		i := c.intn(len(open))
		p := open[i]
		m := oracleMaps[c.intn(len(oracleMaps))]
		switch {
		case op <= 5:
			key := oracleKey(c)
			got, gotOK := p.tx.Get(m, key)
			want, wantOK := md.get(p.m, m, key)
			if gotOK != wantOK || !bytes.Equal(got, want) {
				fail("Get(%q, %q) = %q, %v; model %q, %v", m, key, got, gotOK, want, wantOK)
			}
		case op <= 9:
			key, value := oracleKey(c), []byte(fmt.Sprintf("v%d", step))
			p.tx.Put(m, key, value)
			p.m.put(m, key, value, false)
		case op <= 11:
			key := oracleKey(c)
			p.tx.Delete(m, key)
			p.m.put(m, key, nil, true)
		case op <= 14:
			start, end, limit := oracleBound(c), oracleBound(c), c.intn(4)
			if start == nil && c.intn(2) == 0 {
				start = []byte{}
			}
			got, gotNext := p.tx.Scan(m, start, end, limit)
			want, wantNext := md.scan(p.m, m, start, end, limit)
			if !equalItems(got, want) || !bytes.Equal(gotNext, wantNext) || (gotNext == nil) != (wantNext == nil) {
				fail("Scan(%q, %q, %q, %d) = %s, next %q; model %s, next %q", m, start, end, limit, fmtItems(got), gotNext, fmtItems(want), wantNext)
			}
		case op <= 17:
			if p.tx.HasWrites() != p.m.hasWrites() {
				fail("HasWrites = %v, model %v", p.tx.HasWrites(), p.m.hasWrites())
			}
			wantWS := p.m.writeSet()
			wantSeqno, wantErr := md.commit(p.m)
			sealed := false
			seqno, err := s.Commit(p.tx, func(seqno ids.Seqno, ws *WriteSet) error {
				sealed = true
				if !equalWriteSets(ws, wantWS) {
					fail("seal got write set %s, model %s", fmtWriteSet(ws), fmtWriteSet(wantWS))
				}
				checkRoundTrip(t, ws)
				return nil
			})
			switch {
			case wantErr != nil && !errors.Is(err, wantErr):
				fail("Commit = %d, %v; model fails with %v", seqno, err, wantErr)
			case wantErr == ErrRolledBack && errors.Is(err, ErrConflict):
				fail("Commit = %v, a conflict; model: rolled back", err)
			case wantErr == nil && (err != nil || seqno != wantSeqno):
				fail("Commit = %d, %v; model commits at %d", seqno, err, wantSeqno)
			case sealed != (wantErr == nil && p.m.hasWrites()):
				fail("seal called = %v, model error %v, writes %v", sealed, wantErr, p.m.hasWrites())
			}
			switch {
			case wantErr == ErrRolledBack:
				st.stale++
			case wantErr != nil:
				st.conflicts++
			case p.m.hasWrites():
				st.commits++
			}
			open = slices.Delete(open, i, i+1)
			compareLatest(t, step, s, md)
		case op == 18:
			seqno, err := s.Sequence(nil)
			md.states = append(md.states, md.latest())
			if err != nil || seqno != md.seqno() {
				fail("Sequence = %d, %v; model %d", seqno, err, md.seqno())
			}
		case op == 19:
			// A replicated entry: a random write set applied without validation.
			tx := &mTx{writes: map[MapName]map[string]mWrite{}}
			for range 1 + c.intn(3) {
				m, key := oracleMaps[c.intn(len(oracleMaps))], oracleKey(c)
				if c.intn(3) == 0 {
					tx.put(m, key, nil, true)
				} else {
					tx.put(m, key, []byte(fmt.Sprintf("r%d", step)), false)
				}
			}
			ws := tx.writeSet()
			if err := s.Apply(md.seqno()+1, ws); err != nil {
				fail("Apply: %v", err)
			}
			md.apply(ws)
			compareLatest(t, step, s, md)
		case op == 20:
			// Mostly a few seqnos back; sometimes beyond the latest or below
			// the compaction point.
			seqno := md.seqno()
			to := seqno + 1 - ids.Seqno(c.intn(int(min(seqno, 6))+2))
			err, wantErr := s.Rollback(to), md.rollback(to)
			if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
				fail("Rollback(%d) at %d, compacted %d = %v; model %v", to, seqno, md.compacted, err, wantErr)
			}
			if err != nil {
				st.refused++
			} else {
				st.rollbacks++
			}
			compareLatest(t, step, s, md)
			checkHistory(t, step, s, md, true)
		default:
			seqno := md.seqno()
			to := seqno + 1 - ids.Seqno(c.intn(int(min(seqno, 8))+2))
			s.Compact(to)
			md.compacted = max(md.compacted, to)
			checkHistory(t, step, s, md, true)
		}
	}
	return st
}

// checkHistory checks the store's history against the model: it holds the
// states at [min(compacted, Seqno()), Seqno()], the newest being the
// latest; full checks every slot.
func checkHistory(t testing.TB, step int, s *Store, md *model, full bool) {
	t.Helper()
	h, cur := &s.history, s.cur.Load()
	first := min(md.compacted, md.seqno())
	if s.compacted != md.compacted || h.first() != first || h.n != int(md.seqno()-first)+1 || h.newest() != cur || cur.dropped.Load() {
		t.Fatalf("step %d: history holds %d states from %d, compacted %d, newest is latest %v; model: from %d to %d, compacted %d",
			step, h.n, h.first(), s.compacted, h.newest() == cur, first, md.seqno(), md.compacted)
	}
	if !full {
		return
	}
	for seqno := first; seqno <= md.seqno(); seqno++ {
		if st := h.at(seqno); st == nil || st.seqno != seqno || st.dropped.Load() {
			t.Fatalf("step %d: history at %d holds %+v", step, seqno, st)
		}
	}
	for i := h.n; i < len(h.ring); i++ {
		if h.ring[h.slot(i)] != nil {
			t.Fatalf("step %d: free history slot %d holds a state", step, h.slot(i))
		}
	}
}

// compareLatest checks every key of the universe and every map's full
// contents through Store.Get and a fresh Tx.
func compareLatest(t testing.TB, step int, s *Store, md *model) {
	t.Helper()
	if s.Seqno() != md.seqno() {
		t.Fatalf("step %d: Seqno = %d, model %d", step, s.Seqno(), md.seqno())
	}
	want := md.latest()
	tx := s.Begin()
	for _, m := range oracleMaps {
		items, next := tx.Scan(m, nil, nil, 0)
		if next != nil || len(items) != len(want[m]) {
			t.Fatalf("step %d: map %q holds %s (next %q), model %d items", step, m, fmtItems(items), next, len(want[m]))
		}
		for _, it := range items {
			w, ok := want[m][string(it.Key)]
			v, ver, found := s.Get(m, it.Key)
			if !ok || !bytes.Equal(it.Value, w.value) || it.Version != w.version || !found || !bytes.Equal(v, w.value) || ver != w.version {
				t.Fatalf("step %d: map %q key %q: scan %q@%d, Get %q@%d %v; model %q@%d %v",
					step, m, it.Key, it.Value, it.Version, v, ver, found, w.value, w.version, ok)
			}
		}
	}
}

func equalItems(a, b []Item) bool {
	return slices.EqualFunc(a, b, func(x, y Item) bool {
		return bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value) && x.Version == y.Version
	})
}

func fmtItems(items []Item) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%q=%q@%d", it.Key, it.Value, it.Version)
	}
	b.WriteByte(']')
	return b.String()
}

func equalWriteSets(a, b *WriteSet) bool {
	return slices.EqualFunc(a.maps(), b.maps(), func(x, y MapWrites) bool {
		return x.Name == y.Name && slices.EqualFunc(x.Writes, y.Writes, func(v, w Write) bool {
			return bytes.Equal(v.Key, w.Key) && bytes.Equal(v.Value, w.Value) && v.Deleted == w.Deleted
		})
	})
}

func fmtWriteSet(ws *WriteSet) string {
	var b bytes.Buffer
	for _, mw := range ws.maps() {
		fmt.Fprintf(&b, "%q{", mw.Name)
		for _, w := range mw.Writes {
			if w.Deleted {
				fmt.Fprintf(&b, " -%q", w.Key)
			} else {
				fmt.Fprintf(&b, " %q=%q", w.Key, w.Value)
			}
		}
		b.WriteString(" } ")
	}
	return b.String()
}

// checkRoundTrip checks that ws is valid and decodes from its encoding to
// an equal write set that re-encodes to the same bytes.
func checkRoundTrip(t testing.TB, ws *WriteSet) {
	t.Helper()
	if err := ws.Validate(); err != nil {
		t.Fatalf("write set invalid: %v", err)
	}
	enc := ws.AppendBinary(nil)
	if len(enc) != ws.EncodedLen() {
		t.Fatalf("EncodedLen = %d, encoding is %d bytes", ws.EncodedLen(), len(enc))
	}
	dec, err := DecodeWriteSet(enc)
	if err != nil {
		t.Fatalf("decode own encoding %x: %v", enc, err)
	}
	if !equalWriteSets(dec, ws) {
		t.Fatalf("decoded %s, encoded %s", fmtWriteSet(dec), fmtWriteSet(ws))
	}
	if re := dec.AppendBinary(nil); !bytes.Equal(re, enc) {
		t.Fatalf("re-encoding %x differs from %x", re, enc)
	}
}

func TestOracle(t *testing.T) {
	steps := 4000
	if testing.Short() {
		steps = 500
	}
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			st := runOracle(t, &randChooser{r: rand.New(rand.NewPCG(seed, 0x636f636f)), left: steps})
			// The sequence must exercise every outcome to mean anything.
			if st.commits == 0 || st.conflicts == 0 || st.rollbacks == 0 || st.refused == 0 || st.stale == 0 {
				t.Fatalf("%+v: the op mix no longer exercises every outcome", st)
			}
		})
	}
}

func FuzzOracle(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 8 {
		seed := make([]byte, 16<<n%4096)
		for i := range seed {
			seed[i] = byte(r.Uint32())
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		runOracle(t, &byteChooser{b: ops})
	})
}
