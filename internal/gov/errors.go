package gov

import "errors"

// Errors of governance requests. The signed-request refusals are
// signedreq's (ErrMalformed, ErrWrongKind, ErrWrongService,
// ErrWrongProposal, ErrStale, ErrUnknownMember, ErrBadSignature,
// ErrReplayed); these are governance's own.
var (
	// ErrNotActive: the member has not acknowledged its membership, or
	// was not voted in: it may not propose or vote.
	ErrNotActive = errors.New("gov: member is not active")
	// ErrNotProposer: only a proposal's proposer may withdraw it.
	ErrNotProposer = errors.New("gov: not the proposer")
	// ErrNoProposal: no proposal has this id.
	ErrNoProposal = errors.New("gov: no such proposal")
	// ErrNotOpen: the proposal is decided (or withdrawn, failed,
	// dropped): it takes no more ballots.
	ErrNotOpen = errors.New("gov: proposal is not open")
	// ErrInvalidProposal: the constitution's validate refused the
	// proposal; the message is its description.
	ErrInvalidProposal = errors.New("gov: invalid proposal")
	// ErrBadPayload: a ballot or acknowledgement payload that is not what
	// its kind takes.
	ErrBadPayload = errors.New("gov: malformed payload")
	// ErrAckMismatch: an acknowledgement of another state digest than the
	// one the member was given (or of none).
	ErrAckMismatch = errors.New("gov: acknowledgement does not match")
	// ErrConstitution: the constitution is missing, does not compile, or
	// its validate failed (threw or ran past its limits).
	ErrConstitution = errors.New("gov: constitution failed")
	// ErrUnknownAction: the constitution asked the node for an action it
	// does not know.
	ErrUnknownAction = errors.New("gov: unknown node action")
	// ErrCorrupt: a governance table holds a value that does not decode.
	ErrCorrupt = errors.New("gov: corrupt governance record")
)
