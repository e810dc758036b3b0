package ledger

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/vfs"
)

// TestConcurrentAppendSyncRead runs the production pattern: one appender
// (which also truncates its own recent suffix now and then, as raft does on
// a conflict, and re-appends it), one syncer (Sync and SetCommitted), and
// two readers (Read and Scan), then checks the final ledger. Run with -race.
func TestConcurrentAppendSyncRead(t *testing.T) {
	const (
		n    = 3000
		seed = 40
	)
	view := func(s ids.Seqno) ids.View { return ids.View(1 + s/1000) }
	want := func(s ids.Seqno) *Entry { return genEntry(seed, s, view(s)) }

	m := vfs.NewMem()
	l, _ := mustOpen(t, m, 4096)
	var (
		wg       sync.WaitGroup
		appended atomic.Bool // the appender has appended all n entries
		synced   atomic.Bool // the syncer has made all n durable
		// Counters showing the run interleaved as intended.
		reads, syncs, durableTruncs atomic.Int64
		errs                        = make(chan error, 4)
	)
	wg.Add(4)
	go func() { // appender
		defer wg.Done()
		defer appended.Store(true)
		redone := map[ids.Seqno]bool{}
		for s := ids.Seqno(1); s <= n; s++ {
			// Bound the entries in flight, as the node does, so that Syncs
			// are many and small rather than few and huge.
			for l.LastSeqno() > l.DurableSeqno()+16 {
				runtime.Gosched()
			}
			if err := l.Append(want(s)); err != nil {
				errs <- fmt.Errorf("Append(%d): %w", s, err)
				return
			}
			if s%500 == 0 && !redone[s] {
				redone[s] = true
				// Drop the last 10 (some possibly durable) and redo them.
				if l.DurableSeqno() > s-10 {
					durableTruncs.Add(1) // may race a Sync: a lower bound
				}
				if err := l.Truncate(s - 10); err != nil {
					errs <- fmt.Errorf("Truncate(%d): %w", s-10, err)
					return
				}
				s -= 10
			}
		}
	}()
	go func() { // syncer
		defer wg.Done()
		defer synced.Store(true)
		for {
			done := appended.Load() // read before Sync: then Sync covers everything
			d, err := l.Sync()
			if err != nil {
				errs <- fmt.Errorf("Sync: %w", err)
				return
			}
			syncs.Add(1)
			if d > 100 {
				if err := l.SetCommitted(d - 100); err != nil {
					errs <- fmt.Errorf("SetCommitted: %w", err)
					return
				}
			}
			if done && d == n {
				return
			}
			runtime.Gosched()
		}
	}()
	for r := range uint64(2) {
		go func() { // reader
			defer wg.Done()
			rng := seeded(r)
			for i := 0; !synced.Load() || i < 100; i++ {
				d := l.DurableSeqno()
				if d == 0 {
					runtime.Gosched()
					continue
				}
				s := 1 + ids.Seqno(rng.IntN(int(d)))
				if rng.IntN(10) == 0 {
					count := 0
					err := l.Scan(s, func(e *Entry) error {
						if !entriesEqual(e, want(e.Seqno)) || e.Seqno != s+ids.Seqno(count) {
							return fmt.Errorf("Scan from %d: bad entry %d at position %d", s, e.Seqno, count)
						}
						if count++; count == 50 {
							return errStop
						}
						return nil
					})
					if err != nil && !errors.Is(err, errStop) && !errors.Is(err, ErrNotFound) {
						errs <- err
						return
					}
					continue
				}
				e, err := l.Read(s)
				switch {
				case errors.Is(err, ErrNotFound):
					// s was truncated after we read DurableSeqno: allowed.
				case err != nil:
					errs <- fmt.Errorf("Read(%d): %w", s, err)
					return
				case !entriesEqual(e, want(s)):
					errs <- fmt.Errorf("Read(%d) returned a different entry", s)
					return
				default:
					reads.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d syncs, %d successful reads, %d truncations of durable entries", syncs.Load(), reads.Load(), durableTruncs.Load())
	if syncs.Load() < 10 || reads.Load() < 100 {
		t.Fatal("the goroutines did not interleave enough to test anything")
	}
	var all []*Entry
	for s := ids.Seqno(1); s <= n; s++ {
		all = append(all, want(s))
	}
	checkContent(t, l, all)
	mustClose(t, l)
	l, _ = mustOpen(t, m, 4096)
	checkContent(t, l, all)
	mustClose(t, l)
	sameFiles(t, dirFiles(t, m), expectFiles(all, 4096, committedThrough(all, 4096, n-100)))
}
