package kv

import "github.com/cocoledger/coco/internal/ids"

// history holds the states at consecutive seqnos, oldest first, in a ring
// buffer: O(1) push, O(1) per state dropped at either end, and no
// allocation in the steady state. Its capacity is a power of two; it doubles
// when full and, beyond shrinkAbove slots, halves when a quarter full, so it
// follows the uncommitted window after a spike without reallocating at
// every swing of a small one. Dropped slots are cleared, so the ring never
// keeps a forgotten state alive. It is used only under the store's mutex.
type history struct {
	ring []*state
	head int // index in ring of the oldest state
	n    int
}

const (
	minHistory  = 16
	shrinkAbove = 1024
)

func (h *history) slot(i int) int { return (h.head + i) & (len(h.ring) - 1) }

// push appends st, whose seqno must follow the newest state's.
func (h *history) push(st *state) {
	if h.n == len(h.ring) {
		h.resize(max(minHistory, 2*len(h.ring)))
	}
	h.ring[h.slot(h.n)] = st
	h.n++
}

// first returns the seqno of the oldest state; the history must not be
// empty.
func (h *history) first() ids.Seqno { return h.ring[h.head].seqno }

// newest returns the latest state; the history must not be empty.
func (h *history) newest() *state { return h.ring[h.slot(h.n-1)] }

// at returns the state at seqno, nil if the history does not hold it.
func (h *history) at(seqno ids.Seqno) *state {
	if h.n == 0 || seqno < h.first() || seqno-h.first() >= ids.Seqno(h.n) {
		return nil
	}
	return h.ring[h.slot(int(seqno-h.first()))]
}

// pop removes and returns the newest state.
func (h *history) pop() *state {
	h.n--
	i := h.slot(h.n)
	st := h.ring[i]
	h.ring[i] = nil
	h.shrink()
	return st
}

// dropBefore forgets the states before seqno, which must not be beyond the
// newest state's; the history must not be empty.
func (h *history) dropBefore(seqno ids.Seqno) {
	if seqno <= h.first() {
		return
	}
	k := int(seqno - h.first())
	if end := h.head + k; end <= len(h.ring) {
		clear(h.ring[h.head:end])
	} else {
		clear(h.ring[h.head:])
		clear(h.ring[:end-len(h.ring)])
	}
	h.head, h.n = h.slot(k), h.n-k
	h.shrink()
}

// shrink halves the ring while it is beyond shrinkAbove and at most a
// quarter full, in one reallocation.
func (h *history) shrink() {
	size := len(h.ring)
	for size > shrinkAbove && h.n <= size/4 {
		size /= 2
	}
	if size != len(h.ring) {
		h.resize(size)
	}
}

// resize moves the states to a new ring of size slots, oldest at index 0.
func (h *history) resize(size int) {
	ring := make([]*state, size)
	k := copy(ring[:h.n], h.ring[h.head:])
	copy(ring[k:h.n], h.ring[:h.n-k])
	h.ring, h.head = ring, 0
}
