package constitution

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dop251/goja"
)

// KV is the governed key-value view scripts see through coco.kv. Tables are
// named like "public:coco.gov.members"; keys are UTF-8 text and values, in
// the governance tables, JSON text. The package enforces which tables a
// script may read and write; the KV only stores. Apply's writes are not
// atomic here: the caller passes a transaction and discards it when Apply
// fails.
type KV interface {
	// Get returns the value of key in table, and whether it exists.
	Get(table, key string) (value string, ok bool)
	// Range calls fn for every key of table in ascending order until fn
	// returns false.
	Range(table string, fn func(key, value string) bool)
	// Put sets key in table to value.
	Put(table, key, value string) error
	// Delete removes key from table; removing an absent key is not an
	// error.
	Delete(table, key string) error
}

// Host performs the actions of apply that need the node rather than a table
// write (the default constitution's transition_service_to_open,
// transition_node_to_trusted, remove_node, set_service_configuration and
// trigger_ledger_rekey). A script calls coco.host(name, args); Action gets
// the name and JSON.stringify(args). Like the KV writes, the effects must
// belong to the caller's transaction: Apply may still fail after Action
// returned. An error stops the script (it cannot catch it) and Apply returns
// it wrapped.
type Host interface {
	Action(name, argsJSON string) error
}

// State is a proposal's state as resolve decides it.
type State string

// The states resolve may return.
const (
	StateOpen     State = "Open"
	StateAccepted State = "Accepted"
	StateRejected State = "Rejected"
)

// Vote is one member's vote on a proposal, as resolve sees it: JS
// {member_id, vote}. A JS ballot becomes a Vote by Ballot.Vote.
type Vote struct {
	MemberID string
	Vote     bool
}

// Validation is validate's verdict on a proposal.
type Validation struct {
	Valid       bool
	Description string
}

// constitutionExports are the functions a constitution must export.
var constitutionExports = []string{"validate", "resolve", "apply"}

// Constitution is a compiled constitution. It is immutable and safe for
// concurrent use; each call runs in a runtime of its own.
type Constitution struct {
	prg *goja.Program
	lim Limits
}

// Compile compiles a constitution, an ES module exporting the functions
// validate, resolve and apply, whose calls will run under lim (zero fields
// take their defaults). It evaluates the module's top level once, under the
// same limits, to check the exports. Errors are *CompileError (syntax, with
// position; missing export), *ScriptError (the top level threw) or
// *LimitError.
func Compile(src string, lim Limits) (*Constitution, error) {
	lim = lim.orDefaults()
	prg, err := compileChecked(context.Background(), src, lim, constitutionExports...)
	if err != nil {
		return nil, err
	}
	return &Constitution{prg: prg, lim: lim}, nil
}

// Validate runs validate(proposalJSON). The script gets no KV: validity
// depends on the proposal alone. A proposal that is not JSON is invalid
// without running the script. The error reports a failed call (script
// error, limit, bad result), not an invalid proposal.
func (c *Constitution) Validate(ctx context.Context, proposalJSON string) (Validation, error) {
	if err := checkJSON(proposalJSON); err != nil {
		return Validation{Description: "the proposal is not valid JSON: " + err.Error()}, nil
	}
	var out Validation
	s := newSession(ctx, c.lim, nil, nil)
	err := s.run(c.prg, func(exports *goja.Object) error {
		v, err := s.callExport(exports, "validate", phaseValidate, s.vm.ToValue(proposalJSON))
		if err != nil {
			return err
		}
		const want = "{valid: boolean, description: string}"
		o, ok := v.(*goja.Object)
		if !ok {
			return errBadResult("validate", v, want)
		}
		valid := o.Get("valid")
		if out.Valid, ok = exportOf[bool](valid); !ok {
			return errBadResult("validate", v, want+" (valid is "+describe(valid)+")")
		}
		desc := o.Get("description")
		if desc == nil || goja.IsUndefined(desc) || goja.IsNull(desc) {
			return nil
		}
		if out.Description, ok = exportOf[string](desc); !ok {
			return errBadResult("validate", v, want+" (description is "+describe(desc)+")")
		}
		return nil
	})
	if err != nil {
		return Validation{}, err
	}
	return out, nil
}

// Resolve runs resolve(proposalJSON, proposer, votes) with read-only access
// to kv and returns the proposal's state. votes holds at most one vote per
// member (else ErrDuplicateVote); the caller evaluates JS ballots into votes
// first (Ballot.Vote), against the same state of kv.
func (c *Constitution) Resolve(ctx context.Context, kv KV, proposalJSON, proposer string, votes []Vote) (State, error) {
	if err := checkJSON(proposalJSON); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadProposal, err)
	}
	seen := make(map[string]bool, len(votes))
	for _, v := range votes {
		if seen[v.MemberID] {
			return "", fmt.Errorf("%w: member %s", ErrDuplicateVote, v.MemberID)
		}
		seen[v.MemberID] = true
	}
	var state State
	s := newSession(ctx, c.lim, kv, nil)
	err := s.run(c.prg, func(exports *goja.Object) error {
		js := make([]any, len(votes))
		for i, v := range votes {
			o := s.vm.NewObject()
			s.must(o.Set("member_id", v.MemberID))
			s.must(o.Set("vote", v.Vote))
			js[i] = o
		}
		v, err := s.callExport(exports, "resolve", phaseRead, s.vm.ToValue(proposalJSON), s.vm.ToValue(proposer), s.vm.NewArray(js...))
		if err != nil {
			return err
		}
		str, _ := exportOf[string](v)
		switch st := State(str); st {
		case StateOpen, StateAccepted, StateRejected:
			state = st
			return nil
		}
		return errBadResult("resolve", v, `"Open", "Accepted" or "Rejected"`)
	})
	if err != nil {
		return "", err
	}
	return state, nil
}

// Apply runs apply(proposalJSON, proposalID), which writes governance tables
// through kv and performs node actions through host (nil: none available).
// On error the caller must discard kv's writes and host's actions.
func (c *Constitution) Apply(ctx context.Context, kv KV, host Host, proposalJSON, proposalID string) error {
	if err := checkJSON(proposalJSON); err != nil {
		return fmt.Errorf("%w: %w", ErrBadProposal, err)
	}
	s := newSession(ctx, c.lim, kv, host)
	return s.run(c.prg, func(exports *goja.Object) error {
		_, err := s.callExport(exports, "apply", phaseApply, s.vm.ToValue(proposalJSON), s.vm.ToValue(proposalID))
		return err
	})
}

// checkJSON reports whether p is JSON. Besides sparing scripts a parse
// error, it bounds nesting (encoding/json refuses depth beyond 10000) before
// the script engine's recursive JSON.parse sees the text.
func checkJSON(p string) error {
	var raw json.RawMessage
	return json.Unmarshal([]byte(p), &raw)
}

// exportOf returns v as a T if it is a primitive of that type.
func exportOf[T bool | string](v goja.Value) (T, bool) {
	var zero T
	if v == nil {
		return zero, false
	}
	if _, isObj := v.(*goja.Object); isObj {
		return zero, false
	}
	t, ok := v.Export().(T)
	return t, ok
}
