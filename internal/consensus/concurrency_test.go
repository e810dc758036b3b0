package consensus

import (
	"sync"
	"sync/atomic"
	"testing"

	"go.etcd.io/raft/v3"

	"github.com/cocoledger/coco/internal/vfs"
)

// TestConcurrentReads reads the Storage from other goroutines while the
// writer appends and overwrites suffixes (run it with -race). Every answer
// must be well-formed: consecutive indices, entries that convert, and no
// error but raft.ErrUnavailable for a range a truncation just cut.
func TestConcurrentReads(t *testing.T) {
	m := newModel(40)
	s, l := open(t, vfs.NewMem(), dataDir, 2048)
	defer closeLedger(t, l)
	var done atomic.Bool
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := seeded(uint64(41 + r))
			for reads := 0; !done.Load() || reads < 100; reads++ {
				last, err := s.LastIndex()
				if err != nil {
					t.Error(err)
					return
				}
				if last == 0 {
					continue
				}
				lo := 1 + rng.Uint64N(last)
				hi := lo + 1 + rng.Uint64N(last-lo+1)
				ents, err := s.Entries(lo, hi, 1<<20)
				if err == raft.ErrUnavailable {
					continue // truncated since LastIndex
				}
				if err != nil || len(ents) == 0 {
					t.Errorf("Entries(%d, %d): %d entries, %v", lo, hi, len(ents), err)
					return
				}
				for i, e := range ents {
					if e.Index != lo+uint64(i) {
						t.Errorf("Entries(%d, %d)[%d] has index %d", lo, hi, i, e.Index)
						return
					}
					if _, err := ToLedger(e); err != nil {
						t.Errorf("entry read concurrently: %v", err)
						return
					}
				}
				if _, err := s.Term(hi - 1); err != nil && err != raft.ErrUnavailable {
					t.Errorf("Term(%d): %v", hi-1, err)
					return
				}
			}
		}()
	}
	for range 300 {
		m.step(t, s)
	}
	done.Store(true)
	wg.Wait()
	checkAgainst(t, s, m.ms, m.rng)
}
