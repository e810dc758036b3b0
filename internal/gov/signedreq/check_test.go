package signedreq

import (
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cocoledger/coco/internal/ids"
)

func TestCheckRefuses(t *testing.T) {
	m := newMember(t, elliptic.P256())
	ballot := request(KindBallot)
	otherService := sha256.Sum256([]byte("another service"))
	const otherProposal = "00"

	at := func(d time.Duration) []byte {
		r := ballot
		r.CreatedAt = testNow.Add(d)
		return m.sign(t, r)
	}
	badSig := m.sign(t, ballot)
	badSig[len(badSig)-1] ^= 1

	for name, tc := range map[string]struct {
		raw      []byte
		want     Kind
		proposal string
		lookup   func(ids.MemberID) (*x509.Certificate, bool)
		sentinel error
		check    func(t *testing.T, err error)
	}{
		"malformed": {raw: []byte("{}"), want: KindBallot, proposal: testProposal, sentinel: ErrMalformed},
		"ballot to the proposal endpoint": {raw: m.sign(t, ballot), want: KindProposal, sentinel: ErrWrongKind,
			check: func(t *testing.T, err error) {
				var e *KindError
				if !errors.As(err, &e) || e.Got != KindBallot || e.Want != KindProposal {
					t.Fatalf("%#v", err)
				}
			}},
		"ballot for another proposal": {raw: m.sign(t, ballot), want: KindBallot, proposal: otherProposal, sentinel: ErrWrongProposal,
			check: func(t *testing.T, err error) {
				var e *ProposalError
				if !errors.As(err, &e) || e.Got != testProposal || e.Want != otherProposal || e.Kind != KindBallot {
					t.Fatalf("%#v", err)
				}
			}},
		"withdrawal for another proposal": {raw: m.sign(t, request(KindWithdrawal)), want: KindWithdrawal, proposal: otherProposal, sentinel: ErrWrongProposal},
		"another service": {raw: func() []byte { r := ballot; r.ServiceDigest = otherService; return m.sign(t, r) }(), want: KindBallot, proposal: testProposal, sentinel: ErrWrongService,
			check: func(t *testing.T, err error) {
				var e *ServiceError
				if !errors.As(err, &e) || e.Got != otherService || e.Want != testService {
					t.Fatalf("%#v", err)
				}
				msg := fmt.Sprintf("signed for service %x, this service is %x", otherService, testService)
				if !strings.Contains(err.Error(), msg) {
					t.Fatalf("%v\ndoes not say %q", err, msg)
				}
			}},
		"created a second too early": {raw: at(-testWindow - time.Second), want: KindBallot, proposal: testProposal, sentinel: ErrStale,
			check: func(t *testing.T, err error) {
				var e *StaleError
				if !errors.As(err, &e) || !e.CreatedAt.Equal(testNow.Add(-testWindow-time.Second)) || !e.Now.Equal(testNow) || e.Window != testWindow {
					t.Fatalf("%#v", err)
				}
				if !strings.Contains(err.Error(), "5m1s before this node's time") {
					t.Fatalf("message: %v", err)
				}
			}},
		"created a second too late": {raw: at(testWindow + time.Second), want: KindBallot, proposal: testProposal, sentinel: ErrStale,
			check: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "5m1s after this node's time") {
					t.Fatalf("message: %v", err)
				}
			}},
		"unknown member": {raw: m.sign(t, ballot), want: KindBallot, proposal: testProposal, sentinel: ErrUnknownMember,
			lookup: func(ids.MemberID) (*x509.Certificate, bool) { return nil, false },
			check: func(t *testing.T, err error) {
				var e *UnknownMemberError
				if !errors.As(err, &e) || e.ID != m.id {
					t.Fatalf("%#v", err)
				}
			}},
		"bad signature": {raw: badSig, want: KindBallot, proposal: testProposal, sentinel: ErrBadSignature},
	} {
		t.Run(name, func(t *testing.T) {
			lookup := tc.lookup
			if lookup == nil {
				lookup = m.lookup
			}
			c := newChecker()
			r, err := c.Check(testNow, tc.raw, tc.want, tc.proposal, lookup)
			if r != nil {
				t.Fatal("Check returned a request with an error")
			}
			wantOnly(t, err, tc.sentinel)
			if tc.check != nil {
				tc.check(t, err)
			}
			if c.Replays.Len() != 0 {
				t.Fatal("a refused request was remembered")
			}
		})
	}
}

func TestCheckWindowEdges(t *testing.T) {
	m := newMember(t, elliptic.P256())
	for _, d := range []time.Duration{-testWindow, 0, testWindow} {
		r := request(KindProposal)
		r.CreatedAt = testNow.Add(d)
		if _, err := newChecker().Check(testNow, m.sign(t, r), KindProposal, "", m.lookup); err != nil {
			t.Fatalf("created %v from now: %v", d, err)
		}
	}
}

func TestCheckRefusesReplays(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		t.Run(curve.Params().Name, func(t *testing.T) {
			m := newMember(t, curve)
			c := newChecker()
			ballot := request(KindBallot)
			raw := m.sign(t, ballot)
			check := func(now time.Time, raw []byte) error {
				_, err := c.Check(now, raw, KindBallot, testProposal, m.lookup)
				return err
			}

			// The (r, n−s) twin is a valid signature with different raw
			// bytes, accepted the first time it is seen...
			twin := malleate(t, raw, curve)
			if sha256.Sum256(twin) == sha256.Sum256(raw) {
				t.Fatal("malleated request has the same raw digest")
			}
			if err := check(testNow, twin); err != nil {
				t.Fatalf("the malleated signature does not verify: %v", err)
			}
			// ...and then the original is a replay of it.
			wantOnly(t, check(testNow.Add(time.Minute), raw), ErrReplayed)
			wantOnly(t, check(testNow, twin), ErrReplayed)

			// A new signature over the same content is the same request.
			wantOnly(t, check(testNow, m.sign(t, ballot)), ErrReplayed)

			// Different content, even in the same second, is a new request.
			other := ballot
			other.Payload = []byte(`{"vote": false}`)
			if err := check(testNow, m.sign(t, other)); err != nil {
				t.Fatal(err)
			}

			// Once out of the window it is stale, and forgotten.
			wantOnly(t, check(testNow.Add(testWindow+time.Second), raw), ErrStale)
			if n := c.Replays.Len(); n != 0 {
				t.Fatalf("guard still holds %d keys", n)
			}

			// If the clock then goes back, the forgotten request is still
			// refused.
			err := check(testNow, raw)
			wantOnly(t, err, ErrReplayed)
			if !strings.Contains(err.Error(), "this ballot of member "+string(m.id)+" was already accepted") {
				t.Fatalf("message: %v", err)
			}
		})
	}
}

// TestReplayGuardRebuilt feeds a fresh Checker from outside, as a node
// restarting from the ledger does.
func TestReplayGuardRebuilt(t *testing.T) {
	m := newMember(t, elliptic.P256())
	raw := m.sign(t, request(KindAck))
	first, err := newChecker().Check(testNow, raw, KindAck, "", m.lookup)
	if err != nil {
		t.Fatal(err)
	}
	key, created := first.ReplayKey(), first.CreatedAt // as stored in the ledger

	c := newChecker()
	c.Replays.Remember(key, created)
	c.Replays.Remember(key, created) // replaying the ledger twice is harmless
	if c.Replays.Len() != 1 {
		t.Fatalf("Len = %d", c.Replays.Len())
	}
	_, err = c.Check(testNow.Add(time.Minute), raw, KindAck, "", m.lookup)
	wantOnly(t, err, ErrReplayed)
}

func TestReplayGuard(t *testing.T) {
	var g ReplayGuard // the zero value is ready
	k := func(i int) [32]byte { return sha256.Sum256([]byte{byte(i)}) }
	t0 := testNow

	if g.Seen(k(1), t0) {
		t.Fatal("empty guard has seen a key")
	}
	// Out of order, as createdAt within the window may be.
	g.Remember(k(1), t0.Add(2*time.Second))
	g.Remember(k(2), t0)
	g.Remember(k(3), t0.Add(time.Second))
	if !g.Seen(k(1), t0.Add(2*time.Second)) || g.Seen(k(4), t0) || g.Len() != 3 {
		t.Fatal("guard does not hold what it was told")
	}

	g.Forget(t0.Add(time.Second)) // drops k(2) only: created before
	if g.Len() != 2 || !g.Seen(k(3), t0.Add(time.Second)) {
		t.Fatalf("Forget dropped the wrong keys: Len %d", g.Len())
	}
	// Anything created no later than the newest forgotten request is
	// refused: it may be the forgotten one.
	if !g.Seen(k(2), t0) || !g.Seen(k(9), t0) || !g.Seen(k(9), t0.Add(-time.Hour)) {
		t.Fatal("guard accepts what it may have forgotten")
	}
	if g.Seen(k(9), t0.Add(time.Second)) {
		t.Fatal("guard refuses a request newer than everything it forgot")
	}

	g.Forget(t0) // going back changes nothing
	if g.Len() != 2 {
		t.Fatal("Forget with an earlier time dropped keys")
	}
	g.Forget(t0.Add(time.Hour))
	if g.Len() != 0 || len(g.byAge) != 0 || !g.Seen(k(9), t0.Add(2*time.Second)) {
		t.Fatal("guard not emptied, or floor not raised")
	}
}

// TestReplayGuardBounded runs an hour of requests through a Checker: the guard
// never holds more than the requests of two windows.
func TestReplayGuardBounded(t *testing.T) {
	m := newMember(t, elliptic.P256())
	c := newChecker()
	const every = 30 * time.Second
	maxLen := 0
	for i := 0; i < 120; i++ {
		now := testNow.Add(time.Duration(i) * every)
		r := request(KindProposal)
		r.CreatedAt = now.Add(testWindow) // as far ahead as allowed
		if i%2 == 1 {
			r.CreatedAt = now.Add(-testWindow) // and as far behind
		}
		r.Payload = fmt.Appendf(nil, `{"actions":[],"n":%d}`, i)
		if _, err := c.Check(now, m.sign(t, r), KindProposal, "", m.lookup); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		maxLen = max(maxLen, c.Replays.Len())
	}
	if limit := int(2*testWindow/every) + 1; maxLen > limit {
		t.Fatalf("guard grew to %d keys, more than %d", maxLen, limit)
	}
}

func TestCheckPanicsWithoutWindow(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	(&Checker{ServiceDigest: testService}).Check(testNow, nil, KindBallot, testProposal, nil)
}
