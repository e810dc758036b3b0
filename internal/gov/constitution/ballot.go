package constitution

import (
	"context"
	"fmt"

	"github.com/dop251/goja"
)

// Ballot is a compiled JS ballot: an ES module exporting
// vote(proposal, proposerId) that returns a boolean. It is immutable and
// safe for concurrent use.
type Ballot struct {
	prg *goja.Program
	lim Limits
}

// CompileBallot compiles a ballot whose calls will run under lim, as
// Compile does a constitution; the node calls it when a member submits the
// ballot, to refuse one that cannot run.
func CompileBallot(src string, lim Limits) (*Ballot, error) {
	lim = lim.orDefaults()
	prg, err := compileChecked(context.Background(), src, lim, "vote")
	if err != nil {
		return nil, err
	}
	return &Ballot{prg: prg, lim: lim}, nil
}

// Vote runs vote(proposalJSON, proposer) with read-only access to kv. A
// ballot is evaluated when the proposal is resolved, not when it is cast, so
// that it sees the state the decision is made in.
func (b *Ballot) Vote(ctx context.Context, kv KV, proposalJSON, proposer string) (bool, error) {
	if err := checkJSON(proposalJSON); err != nil {
		return false, fmt.Errorf("%w: %w", ErrBadProposal, err)
	}
	var vote bool
	s := newSession(ctx, b.lim, kv, nil)
	err := s.run(b.prg, func(exports *goja.Object) error {
		v, err := s.callExport(exports, "vote", phaseRead, s.vm.ToValue(proposalJSON), s.vm.ToValue(proposer))
		if err != nil {
			return err
		}
		var ok bool
		if vote, ok = exportOf[bool](v); !ok {
			return errBadResult("vote", v, "a boolean")
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return vote, nil
}
