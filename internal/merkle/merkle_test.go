package merkle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// --- Slow oracle: RFC 9162 §2.1.1 MTH and §2.1.3.1 PATH, written straight
// from the RFC over already-hashed leaves, sharing no code with the package.

func oracleNode(l, r Hash) Hash {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l[:])
	h.Write(r[:])
	return Hash(h.Sum(nil))
}

// largestPow2Below returns the largest power of two strictly less than n (n > 1).
func largestPow2Below(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

func oracleMTH(leaves []Hash) Hash {
	switch n := len(leaves); n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	default:
		k := largestPow2Below(n)
		return oracleNode(oracleMTH(leaves[:k]), oracleMTH(leaves[k:]))
	}
}

func oraclePath(m int, leaves []Hash) []Hash {
	n := len(leaves)
	if n == 1 {
		return nil
	}
	k := largestPow2Below(n)
	if m < k {
		return append(oraclePath(m, leaves[:k]), oracleMTH(leaves[k:]))
	}
	return append(oraclePath(m-k, leaves[k:]), oracleMTH(leaves[:k]))
}

// testLeaves returns n distinct, deterministic leaf hashes.
func testLeaves(n int) []Hash {
	out := make([]Hash, n)
	var buf [8]byte
	for i := range out {
		binary.BigEndian.PutUint64(buf[:], uint64(i))
		out[i] = LeafHash(buf[:])
	}
	return out
}

func treeOf(leaves []Hash) *Tree {
	t := New()
	for _, l := range leaves {
		t.Append(l)
	}
	return t
}

func equalPaths(a, b []Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func toSlices(p []Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

func TestLeafHashMatchesRFC6962(t *testing.T) {
	for _, data := range [][]byte{nil, {}, {0}, []byte("coco"), make([]byte, 96), make([]byte, 1000)} {
		got := LeafHash(data)
		want := rfc6962.DefaultHasher.HashLeaf(data)
		if hex.EncodeToString(got[:]) != hex.EncodeToString(want) {
			t.Errorf("LeafHash(%d bytes) = %x, rfc6962 says %x", len(data), got, want)
		}
	}
}

// RFC 6962 / RFC 9162 test vector: the leaf hash of the empty string.
func TestLeafHashKnownAnswer(t *testing.T) {
	got := LeafHash(nil)
	const want = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
	if hex.EncodeToString(got[:]) != want {
		t.Fatalf("LeafHash(\"\") = %x, want %s", got, want)
	}
}

func TestHashChildrenMatchesRFC6962(t *testing.T) {
	leaves := testLeaves(8)
	for i := 0; i+1 < len(leaves); i++ {
		got := hashChildren(leaves[i], leaves[i+1])
		want := rfc6962.DefaultHasher.HashChildren(leaves[i][:], leaves[i+1][:])
		if Hash(want) != got {
			t.Fatalf("hashChildren(%d,%d) = %x, rfc6962 says %x", i, i+1, got, want)
		}
	}
}

func TestEmptyTree(t *testing.T) {
	tr := New()
	if tr.Size() != 0 {
		t.Fatalf("Size() = %d, want 0", tr.Size())
	}
	const want = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if root := tr.Root(); hex.EncodeToString(root[:]) != want {
		t.Fatalf("empty Root() = %x, want SHA-256(\"\") = %s", root, want)
	}
	if root, err := tr.RootAt(0); err != nil || root != tr.Root() {
		t.Fatalf("RootAt(0) = %x, %v; want the empty root", root, err)
	}
}

// Every size 1..130, every index: roots and proofs equal the oracle, both in
// a tree of exactly that size and in a larger tree asked about the past.
func TestAgainstOracleExhaustive(t *testing.T) {
	const max = 130
	leaves := testLeaves(max)
	big := treeOf(leaves)
	for n := 1; n <= max; n++ {
		exact := treeOf(leaves[:n])
		wantRoot := oracleMTH(leaves[:n])
		if got := exact.Root(); got != wantRoot {
			t.Fatalf("size %d: Root() = %x, oracle %x", n, got, wantRoot)
		}
		if got, err := big.RootAt(uint64(n)); err != nil || got != wantRoot {
			t.Fatalf("size %d: RootAt on a %d-leaf tree = %x, %v; oracle %x", n, max, got, err, wantRoot)
		}
		for m := 0; m < n; m++ {
			want := oraclePath(m, leaves[:n])
			for _, tr := range []*Tree{exact, big} {
				got, err := tr.InclusionProof(uint64(m), uint64(n))
				if err != nil {
					t.Fatalf("InclusionProof(%d, %d) on %d leaves: %v", m, n, tr.Size(), err)
				}
				if !equalPaths(got, want) {
					t.Fatalf("InclusionProof(%d, %d) on %d leaves:\n got %x\nwant %x", m, n, tr.Size(), got, want)
				}
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(m), uint64(n), leaves[m][:], toSlices(want), wantRoot[:]); err != nil {
				t.Fatalf("transparency-dev rejects proof (%d, %d): %v", m, n, err)
			}
		}
	}
}

func TestAgainstOracleRandomLarge(t *testing.T) {
	const max = 5000
	leaves := testLeaves(max)
	tr := treeOf(leaves)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 150 {
		n := 1 + rng.IntN(max)
		m := rng.IntN(n)
		wantRoot := oracleMTH(leaves[:n])
		gotRoot, err := tr.RootAt(uint64(n))
		if err != nil || gotRoot != wantRoot {
			t.Fatalf("RootAt(%d) = %x, %v; oracle %x", n, gotRoot, err, wantRoot)
		}
		got, err := tr.InclusionProof(uint64(m), uint64(n))
		if err != nil {
			t.Fatalf("InclusionProof(%d, %d): %v", m, n, err)
		}
		if want := oraclePath(m, leaves[:n]); !equalPaths(got, want) {
			t.Fatalf("InclusionProof(%d, %d):\n got %x\nwant %x", m, n, got, want)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(m), uint64(n), leaves[m][:], toSlices(got), wantRoot[:]); err != nil {
			t.Fatalf("transparency-dev rejects proof (%d, %d): %v", m, n, err)
		}
	}
}

func TestLeafAt(t *testing.T) {
	leaves := testLeaves(37)
	tr := treeOf(leaves)
	for i, want := range leaves {
		if got, err := tr.LeafAt(uint64(i)); err != nil || got != want {
			t.Fatalf("LeafAt(%d) = %x, %v; want %x", i, got, err, want)
		}
	}
}

func TestOutOfRange(t *testing.T) {
	tr := treeOf(testLeaves(5))
	cases := []struct {
		name string
		call func() error
		want RangeError
	}{
		{"RootAt beyond size", func() error { _, err := tr.RootAt(6); return err },
			RangeError{Op: "RootAt", Size: 6, TreeSize: 5}},
		{"LeafAt size", func() error { _, err := tr.LeafAt(5); return err },
			RangeError{Op: "LeafAt", Index: 5, TreeSize: 5}},
		{"proof index == size", func() error { _, err := tr.InclusionProof(3, 3); return err },
			RangeError{Op: "InclusionProof", Index: 3, Size: 3, TreeSize: 5}},
		{"proof of empty tree", func() error { _, err := tr.InclusionProof(0, 0); return err },
			RangeError{Op: "InclusionProof", Index: 0, Size: 0, TreeSize: 5}},
		{"proof size beyond tree", func() error { _, err := tr.InclusionProof(0, 6); return err },
			RangeError{Op: "InclusionProof", Index: 0, Size: 6, TreeSize: 5}},
		{"truncate beyond size", func() error { return tr.Truncate(6) },
			RangeError{Op: "Truncate", Size: 6, TreeSize: 5}},
	}
	for _, c := range cases {
		err := c.call()
		if !errors.Is(err, ErrOutOfRange) {
			t.Errorf("%s: err = %v, want ErrOutOfRange", c.name, err)
			continue
		}
		var re *RangeError
		if !errors.As(err, &re) || *re != c.want {
			t.Errorf("%s: error data = %+v, want %+v", c.name, re, c.want)
		}
	}
	if tr.Size() != 5 {
		t.Fatalf("failed calls changed the tree: Size() = %d", tr.Size())
	}
}

func TestRangeErrorMessages(t *testing.T) {
	for _, c := range []struct {
		err  RangeError
		want string
	}{
		{RangeError{Op: "LeafAt", Index: 9, TreeSize: 4}, "merkle: LeafAt: leaf index 9 out of range: the tree has 4 leaves"},
		{RangeError{Op: "InclusionProof", Index: 3, Size: 3, TreeSize: 4}, "merkle: InclusionProof: leaf index 3 out of range: must be below tree size 3"},
		{RangeError{Op: "InclusionProof", Index: 0, Size: 7, TreeSize: 4}, "merkle: InclusionProof: tree size 7 out of range: the tree has 4 leaves"},
		{RangeError{Op: "Truncate", Size: 7, TreeSize: 4}, "merkle: Truncate: tree size 7 out of range: the tree has 4 leaves"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("%+v.Error() = %q, want %q", c.err, got, c.want)
		}
	}
}

// Truncating to any size and re-appending gives exactly the tree that was
// built fresh, including every stored node (checked through all roots and
// proofs), and truncating to the current size is a no-op.
func TestTruncateThenReappend(t *testing.T) {
	const max = 70
	leaves := testLeaves(max)
	other := testLeaves(2 * max)[max:] // different leaves for the dropped suffix
	fresh := treeOf(leaves)
	for cut := 0; cut <= max; cut++ {
		tr := treeOf(leaves[:cut])
		tr.Append(other[0]) // a suffix that will be replaced
		tr.Append(other[1])
		if err := tr.Truncate(uint64(cut)); err != nil {
			t.Fatalf("Truncate(%d): %v", cut, err)
		}
		if tr.Size() != uint64(cut) {
			t.Fatalf("after Truncate(%d): Size() = %d", cut, tr.Size())
		}
		if want := oracleMTH(leaves[:cut]); tr.Root() != want {
			t.Fatalf("after Truncate(%d): Root() = %x, oracle %x", cut, tr.Root(), want)
		}
		for _, l := range leaves[cut:] {
			tr.Append(l)
		}
		assertSameTree(t, tr, fresh)
		if err := tr.Truncate(tr.Size()); err != nil {
			t.Fatalf("Truncate(Size()): %v", err)
		}
		assertSameTree(t, tr, fresh)
	}
}

func assertSameTree(t *testing.T, got, want *Tree) {
	t.Helper()
	if got.Size() != want.Size() {
		t.Fatalf("Size() = %d, want %d", got.Size(), want.Size())
	}
	for n := uint64(1); n <= want.Size(); n++ {
		g, _ := got.RootAt(n)
		w, _ := want.RootAt(n)
		if g != w {
			t.Fatalf("RootAt(%d) = %x, want %x", n, g, w)
		}
		for m := uint64(0); m < n; m++ {
			gp, err1 := got.InclusionProof(m, n)
			wp, err2 := want.InclusionProof(m, n)
			if err1 != nil || err2 != nil || !equalPaths(gp, wp) {
				t.Fatalf("InclusionProof(%d, %d) = %x, %v; want %x, %v", m, n, gp, err1, wp, err2)
			}
		}
	}
}

// Append must not allocate except when a level's slice grows; a per-append
// allocation would show up as at least one allocation per run.
func TestAppendAllocations(t *testing.T) {
	tr := treeOf(testLeaves(4096))
	leaf := LeafHash([]byte("x"))
	avg := testing.AllocsPerRun(2000, func() { tr.Append(leaf) })
	if avg > 0.05 {
		t.Fatalf("Append allocates %.3f times per call on average, want amortised ~0", avg)
	}
}

// One writer appends, truncates and re-appends the same leaves while readers
// check every root and proof they can observe against the precomputed truth.
// Run with -race.
func TestConcurrentReadersOneWriter(t *testing.T) {
	const max = 600
	leaves := testLeaves(max)
	reference := treeOf(leaves)
	roots := make([]Hash, max+1)
	for n := range roots {
		roots[n], _ = reference.RootAt(uint64(n))
	}

	tr := New()
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for {
				select {
				case <-done:
					return
				default:
				}
				n := tr.Size()
				if n == 0 {
					continue
				}
				m := rng.Uint64N(n)
				// A concurrent Truncate may shrink the tree between Size and
				// these calls; that must surface as ErrOutOfRange, nothing else.
				root, err := tr.RootAt(n)
				if err != nil {
					if !errors.Is(err, ErrOutOfRange) {
						errs <- err
						return
					}
					continue
				}
				if root != roots[n] {
					errs <- errors.New("RootAt returned a wrong root under concurrency")
					return
				}
				p, err := tr.InclusionProof(m, n)
				if err != nil {
					if !errors.Is(err, ErrOutOfRange) {
						errs <- err
						return
					}
					continue
				}
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, m, n, leaves[m][:], toSlices(p), roots[n][:]); err != nil {
					errs <- err
					return
				}
				if _, err := tr.LeafAt(m); err != nil && !errors.Is(err, ErrOutOfRange) {
					errs <- err
					return
				}
				_ = tr.Root()
			}
		}()
	}
	for _, l := range leaves {
		tr.Append(l)
	}
	if err := tr.Truncate(max / 3); err != nil {
		t.Fatal(err)
	}
	for _, l := range leaves[max/3:] {
		tr.Append(l)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if tr.Root() != roots[max] {
		t.Fatalf("final root %x, want %x", tr.Root(), roots[max])
	}
}

// --- Benchmarks at one million leaves.

const benchLeaves = 1_000_000 // not a power of two: Root folds 7 subtrees

var benchTree = sync.OnceValue(func() *Tree { return treeOf(testLeaves(benchLeaves)) })

func BenchmarkAppend(b *testing.B) {
	tr := treeOf(testLeaves(benchLeaves))
	leaf := LeafHash([]byte("bench"))
	b.ReportAllocs()
	for b.Loop() {
		tr.Append(leaf)
	}
}

func BenchmarkRoot(b *testing.B) {
	tr := benchTree()
	b.ReportAllocs()
	for b.Loop() {
		_ = tr.Root()
	}
}

func BenchmarkInclusionProof(b *testing.B) {
	tr := benchTree()
	rng := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.InclusionProof(rng.Uint64N(benchLeaves), benchLeaves); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRootAtPast(b *testing.B) {
	tr := benchTree()
	rng := rand.New(rand.NewPCG(5, 6))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.RootAt(1 + rng.Uint64N(benchLeaves)); err != nil {
			b.Fatal(err)
		}
	}
}

// Cuts on, just before and just after chunk boundaries at several levels,
// then re-append: the result equals a fresh tree at every size.
func TestTruncateAcrossChunks(t *testing.T) {
	n := 2*chunkSize + 5
	leaves := testLeaves(n)
	fresh := treeOf(leaves)
	tr := treeOf(leaves)
	rng := rand.New(rand.NewPCG(9, 9))
	for _, cut := range []int{n - 1, 2 * chunkSize, 2*chunkSize - 1, chunkSize + 1, chunkSize, chunkSize - 1, 2, 0} {
		if err := tr.Truncate(uint64(cut)); err != nil {
			t.Fatalf("Truncate(%d): %v", cut, err)
		}
		if want, _ := fresh.RootAt(uint64(cut)); tr.Root() != want {
			t.Fatalf("after Truncate(%d): Root() = %x, want %x", cut, tr.Root(), want)
		}
		for _, l := range leaves[cut:] {
			tr.Append(l)
		}
		for size := uint64(1); size <= uint64(n); size++ {
			got, _ := tr.RootAt(size)
			want, _ := fresh.RootAt(size)
			if got != want {
				t.Fatalf("cut %d: RootAt(%d) = %x, want %x", cut, size, got, want)
			}
		}
		for range 50 {
			size := 1 + rng.Uint64N(uint64(n))
			m := rng.Uint64N(size)
			gp, err1 := tr.InclusionProof(m, size)
			wp, err2 := fresh.InclusionProof(m, size)
			if err1 != nil || err2 != nil || !equalPaths(gp, wp) {
				t.Fatalf("cut %d: InclusionProof(%d, %d) = %x, %v; want %x, %v", cut, m, size, gp, err1, wp, err2)
			}
		}
	}
}
