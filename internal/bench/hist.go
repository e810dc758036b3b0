package bench

import (
	"math"
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram in nanoseconds: values below
// subCount are exact; above, each power of two is split into subCount equal
// buckets, so a bucket's width is at most 1/subCount of its lower bound and
// a reported quantile overstates the true one by less than 1/64 (1.6%).
// Recording is two shifts and an increment with a fixed memory footprint,
// whatever the run length. Not safe for concurrent use: each worker owns one
// and they are merged at the end.
type histogram struct {
	counts [nBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const (
	subBits  = 6
	subCount = 1 << subBits
	// maxBits covers values below 2^40 ns (18 minutes); larger values share
	// the last bucket, and max stays exact.
	maxBits  = 40
	nBuckets = (maxBits - subBits + 1) * subCount
)

func bucketOf(v time.Duration) int {
	if v < subCount {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - subBits - 1 // so that v>>e is in [subCount, 2*subCount)
	return min((e+1)*subCount+int(v>>e)-subCount, nBuckets-1)
}

// upperOf is the largest value that falls in bucket i.
func upperOf(i int) time.Duration {
	if i < subCount {
		return time.Duration(i)
	}
	e := i/subCount - 1
	m := i%subCount + subCount
	return time.Duration((m+1)<<e - 1)
}

func (h *histogram) record(v time.Duration) {
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// rank is the 1-based nearest rank of quantile q among n samples. The small
// epsilon keeps q*n that is an integer up to rounding (0.9*100 =
// 90.00000000000001) from moving up one rank.
func rank(q float64, n uint64) uint64 {
	r := uint64(math.Ceil(q*float64(n) - 1e-9))
	return min(max(r, 1), n)
}

// quantile returns the nearest-rank q-quantile (0 < q ≤ 1) rounded up to
// its bucket's upper bound, never above the true maximum (which it is for
// the open-ended last bucket); 0 when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := rank(q, h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want && i < nBuckets-1 {
			return min(upperOf(i), h.max)
		}
	}
	return h.max // the last bucket has no upper bound
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}
