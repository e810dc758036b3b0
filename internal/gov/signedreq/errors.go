package signedreq

import (
	"errors"
	"fmt"
	"time"

	"github.com/cocoledger/coco/internal/ids"
)

// Sentinel errors. Every error Parse, Verify and Checker.Check return
// matches exactly one of them under errors.Is; the typed errors below carry
// the data behind the ones a node answers with.
var (
	// ErrMalformed: not a request of this format. The message says what
	// is wrong.
	ErrMalformed = errors.New("signedreq: malformed request")
	// ErrWrongKind: a well-formed request sent to the endpoint of another
	// kind. See KindError.
	ErrWrongKind = errors.New("signedreq: wrong request kind")
	// ErrWrongService: signed for another service. See ServiceError.
	ErrWrongService = errors.New("signedreq: signed for another service")
	// ErrWrongProposal: a ballot or withdrawal for another proposal than
	// the one its endpoint is for. See ProposalError.
	ErrWrongProposal = errors.New("signedreq: signed for another proposal")
	// ErrStale: created_at too far from the node's clock. See StaleError.
	ErrStale = errors.New("signedreq: created_at outside the accepted window")
	// ErrReplayed: the same signed content was already accepted.
	ErrReplayed = errors.New("signedreq: replayed request")
	// ErrUnknownMember: the kid names no member. See UnknownMemberError.
	ErrUnknownMember = errors.New("signedreq: unknown member")
	// ErrBadSignature: the request is not signed by the member it names.
	ErrBadSignature = errors.New("signedreq: bad signature")
)

// KindError reports a request of one kind sent where another is expected.
// It matches ErrWrongKind.
type KindError struct {
	Got, Want Kind
}

func (e *KindError) Error() string {
	return fmt.Sprintf("%v: the request is a %s but this endpoint takes a %s: send it to the %s endpoint, or sign a %s", ErrWrongKind, e.Got, e.Want, e.Got, e.Want)
}

func (e *KindError) Unwrap() error { return ErrWrongKind }

// ServiceError reports a request signed for another service: Got is the
// service digest in the request, Want this service's. It matches
// ErrWrongService.
type ServiceError struct {
	Got, Want [32]byte
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("%v: the request was signed for service %x, this service is %x: sign it again with the SHA-256 of this service's certificate", ErrWrongService, e.Got, e.Want)
}

func (e *ServiceError) Unwrap() error { return ErrWrongService }

// ProposalError reports a ballot or withdrawal for another proposal than
// the endpoint's, or a proposal id where none belongs. It matches
// ErrWrongProposal.
type ProposalError struct {
	Kind      Kind
	Got, Want string // empty for no proposal
}

func (e *ProposalError) Error() string {
	return fmt.Sprintf("%v: the %s names proposal %q but this endpoint is for proposal %q: sign it again for the proposal in the URL", ErrWrongProposal, e.Kind, e.Got, e.Want)
}

func (e *ProposalError) Unwrap() error { return ErrWrongProposal }

// StaleError reports a created_at further than Window from the node's
// clock, Now, in either direction. It matches ErrStale.
type StaleError struct {
	CreatedAt, Now time.Time
	Window         time.Duration
}

func (e *StaleError) Error() string {
	off, side := e.Now.Sub(e.CreatedAt), "before"
	if off < 0 {
		off, side = -off, "after"
	}
	return fmt.Sprintf("%v: the request was created at %s, %v %s this node's time %s; requests must be created within %v of it: check the signing machine's clock and sign again",
		ErrStale, e.CreatedAt.UTC().Format(time.RFC3339), off, side, e.Now.UTC().Format(time.RFC3339), e.Window)
}

func (e *StaleError) Unwrap() error { return ErrStale }

// UnknownMemberError reports a kid that names no member the node knows. It
// matches ErrUnknownMember.
type UnknownMemberError struct {
	ID ids.MemberID
}

func (e *UnknownMemberError) Error() string {
	return fmt.Sprintf("%v: the request is signed as member %s (kid), which is not a member of this service: sign with a member's key and certificate", ErrUnknownMember, e.ID)
}

func (e *UnknownMemberError) Unwrap() error { return ErrUnknownMember }
