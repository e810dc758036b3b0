package constitution

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// Limits bound one call of a script: an export of a constitution or a
// ballot, together with the module's top level, which runs first in every
// call. A zero field takes its default.
type Limits struct {
	// Time bounds the call's wall-clock time. Default 1s.
	Time time.Duration
	// MaxHeapGrowth bounds, in bytes, how much the process's live Go heap
	// may grow during the call; it also caps the size of a single string
	// that repeat, padStart or padEnd may build. Default 64 MiB. The heap is
	// the whole process's, so this is an approximation (see the package
	// documentation).
	MaxHeapGrowth uint64
	// MaxCallStackSize bounds the depth of nested JavaScript calls. Default
	// 1024.
	MaxCallStackSize int
}

// Defaults of Limits.
const (
	defaultTime          = time.Second
	defaultMaxHeapGrowth = 64 << 20
	defaultMaxCallStack  = 1024
)

func (l Limits) orDefaults() Limits {
	if l.Time <= 0 {
		l.Time = defaultTime
	}
	if l.MaxHeapGrowth == 0 {
		l.MaxHeapGrowth = defaultMaxHeapGrowth
	}
	if l.MaxCallStackSize <= 0 {
		l.MaxCallStackSize = defaultMaxCallStack
	}
	return l
}

// heapPoll is how often the watchdog samples the heap. A sample is a few
// atomic loads; a script that allocates at 1 GB/s overshoots by about a
// megabyte between samples.
const heapPoll = time.Millisecond

// watch starts the watchdog of one call: it interrupts the script when the
// time limit passes, the context ends or the heap grows past the limit. The
// returned stop ends the watchdog and waits for it, so nothing interrupts
// the runtime after stop returns.
func (s *session) watch() (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	heap := newHeapMeter(s.lim.MaxHeapGrowth)
	go func() {
		defer close(exited)
		timer := time.NewTimer(s.lim.Time)
		defer timer.Stop()
		tick := time.NewTicker(heapPoll)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-timer.C:
				s.abort(&LimitError{Kind: LimitTime})
				return
			case <-s.ctx.Done():
				s.abort(&stopError{err: s.ctx.Err()})
				return
			case <-tick.C:
				if heap.exceeded() {
					s.abort(&LimitError{Kind: LimitMemory})
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// Heap metrics (runtime/metrics). objects is cheap and current but counts
// garbage not yet swept; live is exact but only as of the end of the last
// GC cycle.
const (
	metricObjects = "/memory/classes/heap/objects:bytes"
	metricLive    = "/gc/heap/live:bytes"
)

// heapMeter judges heap growth during one call. Goja cannot account memory
// per runtime, so the meter watches the process: it compares the heap
// against the size it had when the call began. A rise of the cheap objects
// metric by the limit may be garbage, so it forces a GC and judges by the
// live heap that survived it; a script that churns garbage therefore costs
// at most one forced GC per limit/2 bytes allocated and is never stopped for
// it, while one that retains memory is stopped within about one poll of
// crossing the limit.
type heapMeter struct {
	limit     uint64
	baseline  uint64 // objects at the start: an upper bound of the live heap then
	threshold uint64 // objects level that triggers the next forced GC
}

func newHeapMeter(limit uint64) *heapMeter {
	base := readHeapMetric(metricObjects)
	return &heapMeter{limit: limit, baseline: base, threshold: base + limit}
}

func (m *heapMeter) exceeded() bool {
	if readHeapMetric(metricObjects) < m.threshold {
		return false
	}
	runtime.GC()
	live := readHeapMetric(metricLive)
	if live > m.baseline+m.limit {
		return true
	}
	m.threshold = max(m.baseline+m.limit, live+m.limit/2)
	return false
}

func readHeapMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		// Both metrics exist since Go 1.21; a runtime without them gets
		// no memory limit rather than a crash.
		return 0
	}
	return s[0].Value.Uint64()
}
