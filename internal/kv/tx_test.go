package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
)

const (
	mapA MapName = "a"
	mapP MapName = "public:p"
)

func mustCommit(t *testing.T, s *Store, tx *Tx) ids.Seqno {
	t.Helper()
	seqno, err := s.Commit(tx, nil)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return seqno
}

func put(t *testing.T, s *Store, m MapName, kvs ...string) ids.Seqno {
	t.Helper()
	tx := s.Begin()
	for i := 0; i < len(kvs); i += 2 {
		tx.Put(m, []byte(kvs[i]), []byte(kvs[i+1]))
	}
	return mustCommit(t, s, tx)
}

func wantConflict(t *testing.T, err error) *ConflictError {
	t.Helper()
	var ce *ConflictError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ConflictError", err)
	}
	return ce
}

func TestMapNameIsPublic(t *testing.T) {
	for name, want := range map[MapName]bool{"public:x": true, "public:": true, "public": false, "x": false, "Public:x": false} {
		if got := name.IsPublic(); got != want {
			t.Errorf("%q.IsPublic() = %v, want %v", name, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name MapName
		want error
	}{
		{"a", nil}, {"public:coco.gov.members", nil}, {"ünï", nil}, {MapName(strings.Repeat("x", MaxMapNameLen)), nil},
		{"", ErrInvalidMapName}, {MapName(strings.Repeat("x", MaxMapNameLen+1)), ErrInvalidMapName},
		{"a\nb", ErrInvalidMapName}, {"a\x00", ErrInvalidMapName}, {"\xff", ErrInvalidMapName},
	} {
		if err := ValidateMapName(tc.name); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("ValidateMapName(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := ValidateKey(make([]byte, MaxKeyLen)); err != nil {
		t.Errorf("ValidateKey(MaxKeyLen bytes) = %v", err)
	}
	if err := ValidateKey(make([]byte, MaxKeyLen+1)); !errors.Is(err, ErrKeyTooLarge) {
		t.Errorf("ValidateKey(MaxKeyLen+1 bytes) = %v, want ErrKeyTooLarge", err)
	}
	if err := ValidateValue(make([]byte, MaxValueLen)); err != nil {
		t.Errorf("ValidateValue(MaxValueLen bytes) = %v", err)
	}
	if err := ValidateValue(make([]byte, MaxValueLen+1)); !errors.Is(err, ErrValueTooLarge) {
		t.Errorf("ValidateValue(MaxValueLen+1 bytes) = %v, want ErrValueTooLarge", err)
	}
}

func TestInvalidWriteFailsCommit(t *testing.T) {
	s := NewStore()
	tx := s.Begin()
	tx.Put(mapA, []byte("ok"), []byte("v"))
	tx.Put(mapA, make([]byte, MaxKeyLen+1), nil)
	tx.Delete("", []byte("k")) // a second error: the first one is kept
	if !errors.Is(tx.Err(), ErrKeyTooLarge) {
		t.Fatalf("Err = %v, want ErrKeyTooLarge", tx.Err())
	}
	if !strings.Contains(tx.Err().Error(), `Put to map "a"`) {
		t.Errorf("Err %q does not name the operation and map", tx.Err())
	}
	if _, err := s.Commit(tx, func(ids.Seqno, *WriteSet) error {
		t.Error("seal called for a transaction with a rejected write")
		return nil
	}); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("Commit = %v, want ErrKeyTooLarge", err)
	}
	if s.Seqno() != 0 {
		t.Fatalf("Seqno = %d after a failed commit", s.Seqno())
	}
	if _, _, ok := s.Get(mapA, []byte("ok")); ok {
		t.Fatal("a write of a failed transaction was applied")
	}
}

func TestReadYourWrites(t *testing.T) {
	s := NewStore()
	put(t, s, mapA, "k", "old", "gone", "x")
	tx := s.Begin()
	tx.Put(mapA, []byte("k"), []byte("new"))
	tx.Delete(mapA, []byte("gone"))
	tx.Put(mapA, []byte("fresh"), nil)
	if v, ok := tx.Get(mapA, []byte("k")); !ok || string(v) != "new" {
		t.Errorf("Get(k) = %q, %v; want own write", v, ok)
	}
	if v, ok := tx.Get(mapA, []byte("gone")); ok {
		t.Errorf("Get(gone) = %q, true; want own delete", v)
	}
	if v, ok := tx.Get(mapA, []byte("fresh")); !ok || v == nil || len(v) != 0 {
		t.Errorf("Get(fresh) = %#v, %v; want an empty, present value", v, ok)
	}
	items, next := tx.Scan(mapA, nil, nil, 0)
	if want := "[\"fresh\"=\"\"@0 \"k\"=\"new\"@0]"; fmtItems(items) != want || next != nil {
		t.Errorf("Scan = %s, %q; want %s", fmtItems(items), next, want)
	}
	// Put copies: changing the caller's buffers changes nothing.
	key, val := []byte("c"), []byte("v1")
	tx.Put(mapA, key, val)
	key[0], val[1] = 'z', '2'
	if v, ok := tx.Get(mapA, []byte("c")); !ok || string(v) != "v1" {
		t.Errorf("Get(c) = %q, %v after the caller reused its buffers", v, ok)
	}
}

func TestLostUpdatePrevented(t *testing.T) {
	s := NewStore()
	put(t, s, mapA, "n", "0")
	t1, t2 := s.Begin(), s.Begin()
	for _, tx := range []*Tx{t1, t2} {
		v, _ := tx.Get(mapA, []byte("n"))
		tx.Put(mapA, []byte("n"), append(bytes.Clone(v), '+'))
	}
	first := mustCommit(t, s, t1)
	_, err := s.Commit(t2, nil)
	ce := wantConflict(t, err)
	if ce.Range || ce.Map != mapA || string(ce.Key) != "n" || ce.Seen != 1 || ce.Now != first || ce.ReadSeqno != 1 {
		t.Errorf("conflict = %+v", ce)
	}
	if want := `kv: conflict: map "a" key "n" was version 1 at snapshot 1 and is now version 2`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if v, _, _ := s.Get(mapA, []byte("n")); string(v) != "0+" {
		t.Errorf("n = %q, want 0+", v)
	}
}

func TestWriteSkewDetected(t *testing.T) {
	// Two doctors on call; each goes off call if the other is still on.
	s := NewStore()
	put(t, s, mapA, "alice", "on", "bob", "on")
	t1, t2 := s.Begin(), s.Begin()
	if v, _ := t1.Get(mapA, []byte("bob")); string(v) == "on" {
		t1.Put(mapA, []byte("alice"), []byte("off"))
	}
	if v, _ := t2.Get(mapA, []byte("alice")); string(v) == "on" {
		t2.Put(mapA, []byte("bob"), []byte("off"))
	}
	mustCommit(t, s, t1)
	_, err := s.Commit(t2, nil)
	if ce := wantConflict(t, err); string(ce.Key) != "alice" {
		t.Errorf("conflict names key %q, want alice", ce.Key)
	}
}

func TestAbsentReadConflictsWithInsert(t *testing.T) {
	s := NewStore()
	t1 := s.Begin()
	if _, ok := t1.Get(mapA, []byte("k")); ok {
		t.Fatal("k exists in an empty store")
	}
	t1.Put(mapA, []byte("other"), []byte("1"))
	put(t, s, mapA, "k", "v")
	_, err := s.Commit(t1, nil)
	if ce := wantConflict(t, err); ce.Seen != 0 || ce.Now != 1 {
		t.Errorf("conflict = %+v, want seen absent, now 1", ce)
	}
	if want := `kv: conflict: map "a" key "k" was absent at snapshot 0 and is now version 1`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestPhantomDetected(t *testing.T) {
	s := NewStore()
	put(t, s, mapA, "b", "1", "d", "1", "x", "1")

	// An insert into a scanned range conflicts.
	t1 := s.Begin()
	items, _ := t1.Scan(mapA, []byte("a"), []byte("m"), 0)
	t1.Put(mapA, []byte("count"), []byte(fmt.Sprint(len(items))))
	put(t, s, mapA, "c", "1")
	_, err := s.Commit(t1, nil)
	ce := wantConflict(t, err)
	if !ce.Range || string(ce.Key) != "c" || string(ce.Start) != "a" || string(ce.End) != "m" {
		t.Errorf("conflict = %+v, want range [a, m) naming c", ce)
	}
	if want := `kv: conflict: map "a" range ["a", "m") read at snapshot 1 changed: key "c" written at version 2`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}

	// So does a delete, which leaves no newer version behind.
	t2 := s.Begin()
	t2.Scan(mapA, []byte("a"), []byte("m"), 0)
	t2.Put(mapA, []byte("count"), nil)
	del := s.Begin()
	del.Delete(mapA, []byte("b"))
	mustCommit(t, s, del)
	_, err = s.Commit(t2, nil)
	if ce := wantConflict(t, err); ce.Key != nil || ce.SeenCount != 3 || ce.NowCount != 2 {
		t.Errorf("conflict = %+v, want 3 keys then, 2 now", ce)
	}
	if want := `kv: conflict: map "a" range ["a", "m") read at snapshot 2 changed: it held 3 keys and now holds 2`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}

	// Writes outside the range, and beyond a page's next key, do not.
	t3 := s.Begin()
	items, next := t3.Scan(mapA, nil, nil, 1) // sees c, next is d
	if len(items) != 1 || string(next) != "d" {
		t.Fatalf("Scan = %s, next %q", fmtItems(items), next)
	}
	t3.Put(mapA, []byte("seen"), items[0].Key)
	put(t, s, mapA, "d", "2", "e", "1", "x", "2")
	mustCommit(t, s, t3)
}

func TestBlindWritesDoNotConflict(t *testing.T) {
	s := NewStore()
	put(t, s, mapA, "k", "0")
	t1, t2 := s.Begin(), s.Begin()
	t1.Put(mapA, []byte("k"), []byte("1"))
	t2.Put(mapA, []byte("k"), []byte("2"))
	t2.Delete(mapP, []byte("other"))
	mustCommit(t, s, t1)
	if seqno := mustCommit(t, s, t2); seqno != 3 {
		t.Fatalf("seqno = %d, want 3", seqno)
	}
	if v, ver, _ := s.Get(mapA, []byte("k")); string(v) != "2" || ver != 3 {
		t.Fatalf("k = %q@%d, want the last writer's 2@3", v, ver)
	}
}

func TestReadOfOwnWriteDoesNotConflict(t *testing.T) {
	s := NewStore()
	t1 := s.Begin()
	t1.Put(mapA, []byte("k"), []byte("mine"))
	if v, _ := t1.Get(mapA, []byte("k")); string(v) != "mine" {
		t.Fatalf("Get = %q", v)
	}
	put(t, s, mapA, "k", "theirs")
	mustCommit(t, s, t1) // its read depended only on its own write
}

func TestSnapshotIsolation(t *testing.T) {
	s := NewStore()
	put(t, s, mapA, "k", "v1", "j", "1")
	old := s.Begin()
	put(t, s, mapA, "k", "v2", "new", "x")
	del := s.Begin()
	del.Delete(mapA, []byte("j"))
	mustCommit(t, s, del)
	if old.ReadSeqno() != 1 || s.Seqno() != 3 {
		t.Fatalf("ReadSeqno = %d, Seqno = %d", old.ReadSeqno(), s.Seqno())
	}
	if v, _ := old.Get(mapA, []byte("k")); string(v) != "v1" {
		t.Errorf("old snapshot reads k = %q, want v1", v)
	}
	if items, _ := old.Scan(mapA, nil, nil, 0); fmtItems(items) != `["j"="1"@1 "k"="v1"@1]` {
		t.Errorf("old snapshot scans %s", fmtItems(items))
	}
	if v, ver, ok := s.Get(mapA, []byte("k")); string(v) != "v2" || ver != 2 || !ok {
		t.Errorf("latest k = %q@%d %v", v, ver, ok)
	}
	if v, ver, ok := s.Get("absent", []byte("k")); v != nil || ver != 0 || ok {
		t.Errorf("Get on an absent map = %q@%d %v", v, ver, ok)
	}
	if v, ver, ok := s.Get(mapA, []byte("j")); v != nil || ver != 0 || ok {
		t.Errorf("Get of a deleted key = %q@%d %v", v, ver, ok)
	}
	// A read-only transaction commits at its snapshot, however old.
	if seqno, err := s.Commit(old, func(ids.Seqno, *WriteSet) error {
		t.Error("seal called for a read-only transaction")
		return nil
	}); err != nil || seqno != 1 {
		t.Errorf("read-only Commit = %d, %v; want 1, nil", seqno, err)
	}
}

func TestEmptyMapsDisappear(t *testing.T) {
	s := NewStore()
	put(t, s, mapA, "k", "v")
	tx := s.Begin()
	tx.Delete(mapA, []byte("k"))
	tx.Delete(mapP, []byte("never"))
	mustCommit(t, s, tx)
	if n := s.cur.Load().maps.Len(); n != 0 {
		t.Fatalf("directory holds %d maps, want 0", n)
	}
}

func TestCommitContract(t *testing.T) {
	s, other := NewStore(), NewStore()
	tx := s.Begin()
	tx.Put(mapA, []byte("k"), []byte("v"))
	if _, err := other.Commit(tx, nil); !errors.Is(err, ErrForeignTx) {
		t.Errorf("Commit on another store = %v, want ErrForeignTx", err)
	}
	boom := errors.New("disk full")
	if _, err := s.Commit(tx, func(ids.Seqno, *WriteSet) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Commit with failing seal = %v, want it wrapped", err)
	}
	if s.Seqno() != 0 {
		t.Errorf("Seqno = %d after a failed seal", s.Seqno())
	}
	if _, _, ok := s.Get(mapA, []byte("k")); ok {
		t.Error("write applied although seal failed")
	}
	if _, err := s.Commit(tx, nil); !errors.Is(err, ErrTxDone) {
		t.Errorf("second Commit = %v, want ErrTxDone", err)
	}
	// The next commit gets the seqno the failed seal did not use.
	if seqno := put(t, s, mapA, "k", "v"); seqno != 1 {
		t.Errorf("seqno = %d, want 1", seqno)
	}
}

func TestSequenceAndApply(t *testing.T) {
	s := NewStore()
	var sealed []ids.Seqno
	seal := func(seqno ids.Seqno) error { sealed = append(sealed, seqno); return nil }
	if seqno, err := s.Sequence(seal); err != nil || seqno != 1 {
		t.Fatalf("Sequence = %d, %v", seqno, err)
	}
	if err := s.Apply(2, nil); err != nil {
		t.Fatalf("Apply(2, nil) = %v", err)
	}
	ws := &WriteSet{Maps: []MapWrites{{Name: mapA, Writes: []Write{{Key: []byte("k"), Value: []byte("v")}}}}}
	if err := s.Apply(3, ws); err != nil {
		t.Fatalf("Apply(3) = %v", err)
	}
	if v, ver, _ := s.Get(mapA, []byte("k")); string(v) != "v" || ver != 3 {
		t.Fatalf("k = %q@%d", v, ver)
	}
	var se *SeqnoError
	if err := s.Apply(5, ws); !errors.Is(err, ErrSeqno) || !errors.As(err, &se) || se.Got != 5 || se.Want != 4 {
		t.Fatalf("Apply(5) = %v, want a SeqnoError wanting 4", err)
	} else if want := "kv: out-of-order seqno: got 5, want 4 (the store is at 3)"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	bad := &WriteSet{Maps: []MapWrites{{Name: mapA}}}
	if err := s.Apply(4, bad); !errors.Is(err, ErrInvalidWriteSet) {
		t.Fatalf("Apply(invalid) = %v, want ErrInvalidWriteSet", err)
	}
	if seqno, err := s.Sequence(seal); err != nil || seqno != 4 || len(sealed) != 2 || sealed[1] != 4 {
		t.Fatalf("Sequence = %d, %v; sealed %v", seqno, err, sealed)
	}
	boom := errors.New("no key")
	if _, err := s.Sequence(func(ids.Seqno) error { return boom }); !errors.Is(err, boom) || s.Seqno() != 4 {
		t.Fatalf("failing Sequence = %v, Seqno %d", err, s.Seqno())
	}
}

// TestPagination pages through keys with every limit and checks each key is
// returned exactly once, in order, including the transaction's own writes
// and deletes, and enough of them to span several write-buffer chunks.
func TestPagination(t *testing.T) {
	s := NewStore()
	r := rand.New(rand.NewPCG(7, 7))
	tx := s.Begin()
	for i := range 300 {
		tx.Put(mapA, key(i*2), []byte("snap"))
	}
	mustCommit(t, s, tx)
	md := newModel()
	md.apply(tx.WriteSet())
	tx, mt := s.Begin(), md.begin()
	for range 400 {
		k := key(r.IntN(600))
		if r.IntN(4) == 0 {
			tx.Delete(mapA, k)
			mt.put(mapA, k, nil, true)
		} else {
			tx.Put(mapA, k, []byte("own"))
			mt.put(mapA, k, []byte("own"), false)
		}
	}
	all, next := md.scan(mt, mapA, nil, nil, 0)
	if next != nil || len(all) < 300 {
		t.Fatalf("model scan: %d items, next %q", len(all), next)
	}
	for _, limit := range []int{1, 2, 7, 31, 32, 33, 100, 1000} {
		var got []Item
		var start []byte
		for pages := 0; ; pages++ {
			if pages > len(all)+1 {
				t.Fatalf("limit %d: pagination does not end", limit)
			}
			items, next := tx.Scan(mapA, start, nil, limit)
			if len(items) > limit || next != nil && len(items) != limit {
				t.Fatalf("limit %d: page of %d items, next %q", limit, len(items), next)
			}
			got = append(got, items...)
			if next == nil {
				break
			}
			start = next
		}
		if !equalItems(got, all) {
			t.Fatalf("limit %d: pages %s, want %s", limit, fmtItems(got), fmtItems(all))
		}
	}
	// A bounded range and an empty one.
	items, _ := tx.Scan(mapA, key(100), key(200), 0)
	want, _ := md.scan(mt, mapA, key(100), key(200), 0)
	if !equalItems(items, want) {
		t.Fatalf("Scan[100, 200) = %s, want %s", fmtItems(items), fmtItems(want))
	}
	if items, next := tx.Scan(mapA, key(5), key(5), 0); items != nil || next != nil {
		t.Fatalf("empty range returned %s, %q", fmtItems(items), next)
	}
}

func key(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i)) }

func TestRetry(t *testing.T) {
	ctx := context.Background()
	calls := 0
	conflict := &ConflictError{Map: mapA, Key: []byte("k")}
	err := Retry(ctx, 3, func() error { calls++; return conflict })
	if !errors.Is(err, ErrConflict) || calls != 3 {
		t.Errorf("Retry = %v after %d calls, want ErrConflict after 3", err, calls)
	}
	calls = 0
	boom := errors.New("handler failed")
	if err := Retry(ctx, 3, func() error { calls++; return boom }); err != boom || calls != 1 {
		t.Errorf("Retry = %v after %d calls, want the handler's error after 1", err, calls)
	}
	calls = 0
	if err := Retry(ctx, 0, func() error { calls++; return nil }); err != nil || calls != 1 {
		t.Errorf("Retry(0) = %v after %d calls, want nil after 1", err, calls)
	}
	done, cancelDone := context.WithCancel(ctx)
	cancelDone()
	if err := Retry(done, 3, func() error { t.Error("run called with a cancelled context"); return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Retry with a cancelled context = %v, want context.Canceled", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	err = Retry(cctx, 5, func() error { calls++; cancel(); return conflict })
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrConflict) || calls != 1 {
		t.Errorf("Retry = %v after %d calls, want cancellation and the conflict after 1", err, calls)
	}
}

// TestConcurrentIncrements runs counters under contention: every increment
// must land exactly once, and seqnos must be dense and unique.
func TestConcurrentIncrements(t *testing.T) {
	const workers, increments = 8, 500
	s := NewStore()
	counter := []byte("counter")
	var mu sync.Mutex
	seen := map[ids.Seqno]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := []byte(fmt.Sprint("worker", w))
			for range increments {
				err := Retry(context.Background(), 1000, func() error {
					tx := s.Begin()
					v, _ := tx.Get(mapA, counter)
					n, _ := binary.Uvarint(v)
					tx.Put(mapA, counter, binary.AppendUvarint(nil, n+1))
					// A disjoint blind write and a scan of it add noise
					// without adding conflicts.
					tx.Put(mapP, own, []byte("x"))
					tx.Scan(mapP, own, append(bytes.Clone(own), 0), 0)
					_, err := s.Commit(tx, func(seqno ids.Seqno, ws *WriteSet) error {
						mu.Lock()
						defer mu.Unlock()
						if seen[seqno] {
							return fmt.Errorf("seqno %d sealed twice", seqno)
						}
						seen[seqno] = true
						return nil
					})
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, ver, _ := s.Get(mapA, counter)
	if n, _ := binary.Uvarint(v); n != workers*increments {
		t.Fatalf("counter = %d, want %d", n, workers*increments)
	}
	if s.Seqno() != workers*increments || ver != s.Seqno() || len(seen) != workers*increments {
		t.Fatalf("Seqno %d, counter version %d, %d seqnos sealed; want %d each", s.Seqno(), ver, len(seen), workers*increments)
	}
}

// TestManyMaps crosses the point where a Tx indexes its maps by hash.
func TestManyMaps(t *testing.T) {
	s := NewStore()
	const n = 3 * linearMaps
	name := func(i int) MapName { return MapName(fmt.Sprint("m", i)) }
	tx := s.Begin()
	for i := range n {
		tx.Put(name(i), []byte("k"), []byte(fmt.Sprint(i)))
	}
	mustCommit(t, s, tx)
	reader := s.Begin()
	for i := range n {
		if v, ok := reader.Get(name(i), []byte("k")); !ok || string(v) != fmt.Sprint(i) {
			t.Fatalf("map %d: Get = %q, %v", i, v, ok)
		}
	}
	reader.Put(name(0), []byte("out"), nil)
	put(t, s, name(n-1), "k", "changed")
	_, err := s.Commit(reader, nil)
	if ce := wantConflict(t, err); ce.Map != name(n-1) {
		t.Fatalf("conflict on map %q, want %q", ce.Map, name(n-1))
	}
}
