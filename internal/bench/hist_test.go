package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// oracle is the slow, obviously correct nearest-rank quantile.
func oracle(samples []time.Duration, q float64) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	return s[rank(q, uint64(len(s)))-1]
}

func TestBucketsTileTheRange(t *testing.T) {
	// Every bucket's upper bound is the value just below the next bucket.
	for i := 0; i < nBuckets-1; i++ {
		u := upperOf(i)
		if bucketOf(u) != i || bucketOf(u+1) != i+1 {
			t.Fatalf("bucket %d: upper %d maps to %d, upper+1 to %d", i, u, bucketOf(u), bucketOf(u+1))
		}
	}
	if got := bucketOf(time.Duration(1) << 62); got != nBuckets-1 {
		t.Fatalf("huge value in bucket %d", got)
	}
	if got := bucketOf(-5); got != 0 {
		t.Fatalf("negative value in bucket %d", got)
	}
}

func TestQuantileMatchesSortOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform-ms":  func() time.Duration { return time.Duration(rng.Int64N(int64(50 * time.Millisecond))) },
		"exponential": func() time.Duration { return time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond)) },
		"bimodal": func() time.Duration {
			if rng.IntN(100) < 95 {
				return time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
			}
			return 200*time.Millisecond + time.Duration(rng.Int64N(int64(time.Second)))
		},
		"tiny":     func() time.Duration { return time.Duration(rng.IntN(200)) },
		"constant": func() time.Duration { return 1234567 },
		"huge":     func() time.Duration { return time.Hour + time.Duration(rng.Int64N(int64(time.Hour))) },
	}
	for name, gen := range dists {
		for _, n := range []int{1, 2, 10, 100, 1001, 20000} {
			samples := make([]time.Duration, n)
			var h histogram
			for i := range samples {
				samples[i] = gen()
				h.record(samples[i])
			}
			for _, q := range []float64{0.001, 0.5, 0.9, 0.99, 0.999, 1} {
				want := oracle(samples, q)
				got := h.quantile(q)
				if got < want || (want < 1<<maxBits && got-want > want/subCount) {
					t.Errorf("%s n=%d q=%v: histogram %v, oracle %v", name, n, q, got, want)
				}
			}
			if h.quantile(1) != slices.Max(samples) {
				t.Errorf("%s n=%d: max %v, want %v", name, n, h.quantile(1), slices.Max(samples))
			}
		}
	}
}

func TestMergeEqualsRecordingAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var a, b, all histogram
	for i := range 5000 {
		v := time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
		all.record(v)
		if i%3 == 0 {
			a.record(v)
		} else {
			b.record(v)
		}
	}
	a.merge(&b)
	if a != all {
		t.Fatal("merged histogram differs from one that recorded every sample")
	}
	var empty histogram
	if empty.quantile(0.5) != 0 || empty.mean() != 0 {
		t.Fatal("empty histogram reports a latency")
	}
}
