package signedreq

import (
	"container/heap"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/cocoledger/coco/internal/ids"
)

// Checker is the node's admission policy for signed governance requests.
// The zero value with ServiceDigest and Window set is ready to use.
type Checker struct {
	// ServiceDigest is the SHA-256 of this service's DER certificate.
	ServiceDigest [32]byte
	// Window is how far created_at may be from the node's clock, in either
	// direction, e.g. 5 minutes. It must be positive.
	Window time.Duration
	// Replays remembers the requests Check accepted. Feed it from outside
	// (the ledger) with Remember to share it between nodes and restarts.
	Replays ReplayGuard
}

// Check admits raw as a request of kind want, sent at time now to an
// endpoint for proposal wantProposal (empty for proposals and acks). lookup
// returns the certificate of a current member. The checks run cheapest
// first, and the replay guard is consulted only for a request whose
// signature verified:
//
//	Parse             ErrMalformed
//	kind              ErrWrongKind      (*KindError)
//	proposal id       ErrWrongProposal  (*ProposalError)
//	service           ErrWrongService   (*ServiceError)
//	created_at        ErrStale          (*StaleError)
//	member            ErrUnknownMember  (*UnknownMemberError)
//	signature         ErrBadSignature
//	replay            ErrReplayed
//
// On success Check remembers the request's ReplayKey, so the same signed
// content is refused until its created_at leaves the window. If the
// caller then fails to apply the request, the member signs a new one:
// refusing a request twice is safe, accepting it twice is not. The node
// records ReplayKey and CreatedAt in the ledger with the request so that
// every node can Remember them.
//
// Check panics if Window is not positive.
func (c *Checker) Check(now time.Time, raw []byte, want Kind, wantProposal string, lookup func(ids.MemberID) (*x509.Certificate, bool)) (*Request, error) {
	if c.Window <= 0 {
		panic("signedreq: Checker.Window must be positive")
	}
	c.Replays.Forget(now.Add(-c.Window))

	r, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if r.Kind != want {
		return nil, &KindError{Got: r.Kind, Want: want}
	}
	if r.ProposalID != wantProposal {
		return nil, &ProposalError{Kind: r.Kind, Got: r.ProposalID, Want: wantProposal}
	}
	if r.ServiceDigest != c.ServiceDigest {
		return nil, &ServiceError{Got: r.ServiceDigest, Want: c.ServiceDigest}
	}
	if d := now.Sub(r.CreatedAt); d > c.Window || d < -c.Window {
		return nil, &StaleError{CreatedAt: r.CreatedAt, Now: now, Window: c.Window}
	}
	cert, ok := lookup(r.MemberID)
	if !ok {
		return nil, &UnknownMemberError{ID: r.MemberID}
	}
	if err := r.Verify(cert); err != nil {
		return nil, err
	}
	key := r.ReplayKey()
	if c.Replays.Seen(key, r.CreatedAt) {
		return nil, fmt.Errorf("%w: this %s of member %s was already accepted (replay key %x): to send it again, sign a new one", ErrReplayed, r.Kind, r.MemberID, key)
	}
	c.Replays.Remember(key, r.CreatedAt)
	return r, nil
}

// ReplayGuard remembers the replay keys of accepted requests with their
// created_at, for as long as a copy could still pass the freshness check.
// Its zero value is empty and ready to use.
//
// It forgets a key only when told to (Forget), and then refuses, as
// possibly seen, every request created no later than the newest request it
// forgot. So it stays safe when the clock it is driven by goes backwards, or
// when it is driven with a shorter window than the freshness check's: it
// may then refuse a fresh request, never accept a replay.
type ReplayGuard struct {
	created map[[32]byte]time.Time
	byAge   ageHeap
	floor   time.Time // created_at of the newest forgotten request
}

// Seen reports whether a request with this replay key and created_at must
// be refused as a replay: its key is remembered, or it is no newer than a
// request already forgotten.
func (g *ReplayGuard) Seen(key [32]byte, createdAt time.Time) bool {
	if _, ok := g.created[key]; ok {
		return true
	}
	return !g.floor.IsZero() && !createdAt.After(g.floor)
}

// Remember records the replay key of an accepted request created at
// createdAt. Remembering a key twice is harmless: the key covers
// created_at, so the same key always comes with the same time.
func (g *ReplayGuard) Remember(key [32]byte, createdAt time.Time) {
	if _, ok := g.created[key]; ok {
		return
	}
	if g.created == nil {
		g.created = make(map[[32]byte]time.Time)
	}
	g.created[key] = createdAt
	heap.Push(&g.byAge, ageEntry{key: key, created: createdAt})
}

// Forget drops the keys of requests created before before, which the
// freshness check refuses anyway. Checker.Check calls it with its clock
// minus its window, which bounds the guard by the number of requests
// accepted within twice the window.
func (g *ReplayGuard) Forget(before time.Time) {
	for len(g.byAge) > 0 && g.byAge[0].created.Before(before) {
		e := heap.Pop(&g.byAge).(ageEntry)
		delete(g.created, e.key)
		if e.created.After(g.floor) {
			g.floor = e.created
		}
	}
}

// Len returns the number of remembered keys.
func (g *ReplayGuard) Len() int { return len(g.created) }

type ageEntry struct {
	key     [32]byte
	created time.Time
}

// ageHeap is a min-heap of entries by created_at: the next to forget first.
type ageHeap []ageEntry

func (h ageHeap) Len() int           { return len(h) }
func (h ageHeap) Less(i, j int) bool { return h[i].created.Before(h[j].created) }
func (h ageHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *ageHeap) Push(x any)        { *h = append(*h, x.(ageEntry)) }
func (h *ageHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
