package kv

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
)

const benchKeys = 1 << 20

var (
	benchOnce  sync.Once
	benchStore *Store
)

// compactEvery is how often the commit benchmarks call Compact, as a node
// does when a signature commits: without it the store would keep every
// state the benchmark publishes, and measure the garbage collector.
const compactEvery = 100

func benchKey(i uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), i) }

// preloaded returns a store holding benchKeys keys with 32-byte values in
// map "bench", built once per test binary; benchmarks that write to it
// write only keys in that range, so they keep its size, and compact as they
// go (see compactEvery), so they keep its history short.
func preloaded(b *testing.B) *Store {
	b.Helper()
	benchOnce.Do(func() {
		s := NewStore()
		value := make([]byte, 32)
		const chunk = 1 << 14
		for start := uint64(0); start < benchKeys; start += chunk {
			writes := make([]Write, chunk)
			for i := range writes {
				writes[i] = Write{Key: benchKey(start + uint64(i)), Value: value}
			}
			if err := s.Apply(s.Seqno()+1, &WriteSet{Maps: []MapWrites{{Name: "bench", Writes: writes}}}); err != nil {
				panic(err)
			}
		}
		s.Compact(s.Seqno())
		benchStore = s
	})
	return benchStore
}

// BenchmarkCommitOneKey commits one-key read-modify-write transactions on
// random existing keys, one after another: at 1M keys the cost is mostly
// cache misses on the two descents (Get, then the copy-on-write insert); 1K
// keys shows the fixed cost.
func BenchmarkCommitOneKey(b *testing.B) {
	small := NewStore()
	tx := small.Begin()
	for i := range uint64(1 << 10) {
		tx.Put("bench", benchKey(i), make([]byte, 32))
	}
	if _, err := small.Commit(tx, nil); err != nil {
		b.Fatal(err)
	}
	small.Compact(small.Seqno())
	for _, tc := range []struct {
		name  string
		store func() *Store
		keys  uint64
	}{
		{"keys=1K", func() *Store { return small }, 1 << 10},
		{"keys=1M", func() *Store { return preloaded(b) }, benchKeys},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := tc.store()
			r := rand.New(rand.NewPCG(1, 1))
			value := make([]byte, 32)
			b.ReportAllocs()
			for b.Loop() {
				tx := s.Begin()
				k := benchKey(r.Uint64N(tc.keys))
				tx.Get("bench", k)
				tx.Put("bench", k, value)
				seqno, err := s.Commit(tx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if seqno%compactEvery == 0 {
					s.Compact(seqno)
				}
			}
		})
	}
}

// BenchmarkCommitParallel commits one-key read-modify-write transactions
// on disjoint keys from every P: no conflicts, only the commit mutex is
// shared.
func BenchmarkCommitParallel(b *testing.B) {
	s := preloaded(b)
	var worker atomic.Uint64
	value := make([]byte, 32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := worker.Add(1)
		r := rand.New(rand.NewPCG(id, 2))
		for pb.Next() {
			// Keys ≡ id mod 64: disjoint across up to 64 workers.
			k := benchKey(r.Uint64N(benchKeys/64)*64 + id%64)
			tx := s.Begin()
			tx.Get("bench", k)
			tx.Put("bench", k, value)
			seqno, err := s.Commit(tx, func(ids.Seqno, *WriteSet) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			if seqno%compactEvery == 0 {
				s.Compact(seqno)
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	s := preloaded(b)
	keys := make([][]byte, 1<<12)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range keys {
		keys[i] = benchKey(r.Uint64N(benchKeys))
	}
	b.Run("Store", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, _, ok := s.Get("bench", keys[i%len(keys)]); !ok {
				b.Fatal("missing key")
			}
			i++
		}
	})
	b.Run("Tx", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		tx := s.Begin()
		for b.Loop() {
			// A fresh Tx now and then keeps the read set at a realistic size.
			if i%64 == 0 {
				tx = s.Begin()
			}
			if _, ok := tx.Get("bench", keys[i%len(keys)]); !ok {
				b.Fatal("missing key")
			}
			i++
		}
	})
}

func BenchmarkScan100(b *testing.B) {
	s := preloaded(b)
	r := rand.New(rand.NewPCG(4, 4))
	b.ReportAllocs()
	for b.Loop() {
		tx := s.Begin()
		if items, _ := tx.Scan("bench", benchKey(r.Uint64N(benchKeys-200)), nil, 100); len(items) != 100 {
			b.Fatalf("%d items", len(items))
		}
	}
}

// benchWriteSet is a typical application entry: 2 maps, 8 writes of
// 16-byte keys and 100-byte values.
func benchWriteSet() *WriteSet {
	r := rand.New(rand.NewPCG(5, 5))
	tx := &mTx{writes: map[MapName]map[string]mWrite{}}
	for i := range 8 {
		k := make([]byte, 16)
		for j := range k {
			k[j] = byte(r.Uint32())
		}
		tx.put([]MapName{"app.accounts", "public:app.log"}[i%2], k, make([]byte, 100), false)
	}
	return tx.writeSet()
}

func BenchmarkWriteSetEncode(b *testing.B) {
	ws := benchWriteSet()
	buf := make([]byte, 0, ws.EncodedLen())
	b.SetBytes(int64(ws.EncodedLen()))
	b.ReportAllocs()
	for b.Loop() {
		buf = ws.AppendBinary(buf[:0])
	}
}

func BenchmarkWriteSetDecode(b *testing.B) {
	enc := benchWriteSet().AppendBinary(nil)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeWriteSet(enc); err != nil {
			b.Fatal(err)
		}
	}
}
