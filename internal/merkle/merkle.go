package merkle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/transparency-dev/merkle/proof"
)

// Hash is a SHA-256 digest: a leaf hash, a node hash or a root.
type Hash = [32]byte

// RFC 9162 §2.1.1 domain separation prefixes.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// ErrOutOfRange reports an index or tree size that the tree does not have.
var ErrOutOfRange = errors.New("merkle: out of range")

// RangeError says which operation asked for what, and how big the tree was.
type RangeError struct {
	Op       string // "RootAt", "InclusionProof", "LeafAt" or "Truncate"
	Index    uint64 // leaf index asked for; meaningful for InclusionProof and LeafAt
	Size     uint64 // tree size asked for; meaningful for RootAt, InclusionProof and Truncate
	TreeSize uint64 // Size() when the call was made
}

func (e *RangeError) Error() string {
	switch e.Op {
	case "LeafAt":
		return fmt.Sprintf("merkle: LeafAt: leaf index %d out of range: the tree has %d leaves", e.Index, e.TreeSize)
	case "InclusionProof":
		if e.Size > e.TreeSize {
			return fmt.Sprintf("merkle: InclusionProof: tree size %d out of range: the tree has %d leaves", e.Size, e.TreeSize)
		}
		return fmt.Sprintf("merkle: InclusionProof: leaf index %d out of range: must be below tree size %d", e.Index, e.Size)
	default:
		return fmt.Sprintf("merkle: %s: tree size %d out of range: the tree has %d leaves", e.Op, e.Size, e.TreeSize)
	}
}

// Unwrap lets errors.Is(err, ErrOutOfRange) match.
func (e *RangeError) Unwrap() error { return ErrOutOfRange }

// emptyRoot is MTH({}) = SHA-256 of the empty string (RFC 9162 §2.1.1).
var emptyRoot = sha256.Sum256(nil)

// LeafHash returns the RFC 9162 leaf hash SHA-256(0x00 ‖ data).
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{leafPrefix})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// hashChildren returns the RFC 9162 node hash SHA-256(0x01 ‖ left ‖ right).
// It is written against crypto/sha256 rather than through the rfc6962 hasher
// because that hasher allocates three times per call, and this runs on every
// Append; TestHashChildrenMatchesRFC6962 pins the two together.
func hashChildren(left, right Hash) Hash {
	var buf [1 + 2*sha256.Size]byte
	buf[0] = nodePrefix
	copy(buf[1:], left[:])
	copy(buf[1+sha256.Size:], right[:])
	return sha256.Sum256(buf[:])
}

// Each level is stored in chunks of chunkSize hashes rather than in one slice,
// so that growing a level never copies more than one chunk: a single slice
// would, around 100M leaves, copy gigabytes under the write lock while every
// reader waits.
const (
	chunkBits = 12
	chunkSize = 1 << chunkBits // 128 KiB of hashes
	chunkMask = chunkSize - 1
)

// level is one level of the tree as a list of chunks; every chunk but the
// last holds exactly chunkSize hashes.
type level [][]Hash

func (lv level) at(i uint64) Hash { return lv[i>>chunkBits][i&chunkMask] }

func (lv *level) push(h Hash) {
	last := len(*lv) - 1
	if last < 0 || len((*lv)[last]) == chunkSize {
		var c []Hash
		if last >= 0 {
			// A full chunk exists, so this level is big: take a whole
			// chunk now instead of growing into it.
			c = make([]Hash, 0, chunkSize)
		}
		*lv = append(*lv, c)
		last++
	}
	(*lv)[last] = append((*lv)[last], h)
}

// truncate keeps the first n hashes. Dropped chunks are cleared from the
// backing array so that a tree truncated for good does not pin them.
func (lv *level) truncate(n uint64) {
	keep, rem := int(n>>chunkBits), int(n&chunkMask)
	if rem != 0 {
		keep++
	}
	clear((*lv)[keep:])
	*lv = (*lv)[:keep]
	if rem != 0 {
		(*lv)[keep-1] = (*lv)[keep-1][:rem]
	}
}

// Tree is an append-only RFC 9162 Merkle tree. The zero value is not usable;
// call New.
type Tree struct {
	mu sync.RWMutex
	n  uint64 // number of leaves
	// levels[l].at(i) is the hash of the perfect subtree over leaves
	// [i<<l, (i+1)<<l); levels[l] holds n>>l hashes for every l kept.
	levels []level
}

// New returns an empty tree.
func New() *Tree {
	// 64 levels hold any uint64 size, so this slice never grows.
	return &Tree{levels: make([]level, 1, 64)}
}

// Append adds an already-hashed leaf (see LeafHash) at index Size().
func (t *Tree) Append(leaf Hash) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.levels[0].push(leaf)
	t.n++
	h := leaf
	// Whenever level l reaches an even number of nodes, its last two are
	// siblings whose parent has just become a complete subtree.
	for l, count := 0, t.n; count&1 == 0; l, count = l+1, count>>1 {
		h = hashChildren(t.levels[l].at(count-2), h)
		if l+1 == len(t.levels) {
			t.levels = append(t.levels, nil)
		}
		t.levels[l+1].push(h)
	}
}

// Size returns the number of leaves.
func (t *Tree) Size() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size()
}

func (t *Tree) size() uint64 { return t.n }

// Root returns the root of the whole tree; SHA-256("") when it is empty.
func (t *Tree) Root() Hash {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.rootAt(t.size())
}

// RootAt returns the root the tree had when it held size leaves,
// 0 <= size <= Size().
func (t *Tree) RootAt(size uint64) (Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if size > t.size() {
		return Hash{}, &RangeError{Op: "RootAt", Size: size, TreeSize: t.size()}
	}
	return t.rootAt(size), nil
}

// rootAt folds the perfect subtrees that make up [0, size), smallest (right
// most) first. Bit l of size is set iff such a subtree of 2^l leaves exists,
// and it is then the last complete node of level l within size.
func (t *Tree) rootAt(size uint64) Hash {
	if size == 0 {
		return emptyRoot
	}
	l := bits.TrailingZeros64(size)
	root := t.levels[l].at((size >> l) - 1)
	for rest := size >> (l + 1); rest != 0; rest >>= 1 {
		l++
		if rest&1 == 1 {
			root = hashChildren(t.levels[l].at((size>>l)-1), root)
		}
	}
	return root
}

// InclusionProof returns the RFC 9162 §2.1.3.1 inclusion proof (audit path)
// of leaf index in the tree of the given size: sibling hashes ordered from the
// leaf up. It requires index < size <= Size().
func (t *Tree) InclusionProof(index, size uint64) ([]Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if index >= size || size > t.size() {
		return nil, &RangeError{Op: "InclusionProof", Index: index, Size: size, TreeSize: t.size()}
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		// Unreachable: the arguments were checked above.
		return nil, fmt.Errorf("merkle: InclusionProof(%d, %d): %w", index, size, err)
	}
	// Every id is a perfect subtree inside [0, size), hence stored. Rehash
	// folds the ids right of the leaf's subtree into the one ephemeral node
	// RFC 9162 puts in the path there.
	stored := make([]Hash, len(nodes.IDs))
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		stored[i] = t.levels[id.Level].at(id.Index)
		hashes[i] = stored[i][:]
	}
	hashes, err = nodes.Rehash(hashes, func(left, right []byte) []byte {
		h := hashChildren(Hash(left), Hash(right))
		return h[:]
	})
	if err != nil {
		return nil, fmt.Errorf("merkle: InclusionProof(%d, %d): %w", index, size, err)
	}
	path := make([]Hash, len(hashes))
	for i, h := range hashes {
		path[i] = Hash(h)
	}
	return path, nil
}

// LeafAt returns the leaf hash at index, index < Size().
func (t *Tree) LeafAt(index uint64) (Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if index >= t.size() {
		return Hash{}, &RangeError{Op: "LeafAt", Index: index, TreeSize: t.size()}
	}
	return t.levels[0].at(index), nil
}

// Truncate drops every leaf at index >= size, size <= Size(), so that the
// tree is exactly as it was after its first size appends. Raft uses this when
// an uncommitted suffix of the log is replaced.
func (t *Tree) Truncate(size uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if size > t.size() {
		return &RangeError{Op: "Truncate", Size: size, TreeSize: t.size()}
	}
	// Subtrees that end at or before size are untouched; every other node
	// covers at least one dropped leaf.
	for l := range t.levels {
		t.levels[l].truncate(size >> l)
	}
	t.n = size
	return nil
}
