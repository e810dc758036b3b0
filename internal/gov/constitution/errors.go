package constitution

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns for a script's fault
// matches one of them with errors.Is; the typed errors below carry the
// details. Failures of the caller's KV or Host are returned wrapped, so
// errors.Is finds the caller's own error.
var (
	// ErrCompile: a source does not compile, or does not export the
	// functions its kind needs; the error is a *CompileError.
	ErrCompile = errors.New("constitution: compile error")
	// ErrScript: the script threw; the error is a *ScriptError.
	ErrScript = errors.New("constitution: script error")
	// ErrLimit: the script was stopped by a limit; the error is a
	// *LimitError.
	ErrLimit = errors.New("constitution: limit exceeded")
	// ErrBadResult: an export returned a value of the wrong shape (e.g.
	// resolve returned something other than "Open", "Accepted" or
	// "Rejected").
	ErrBadResult = errors.New("constitution: bad result")
	// ErrBadProposal: Resolve, Apply or Ballot.Vote was given a proposal that is not
	// JSON. (Validate reports it as an invalid proposal instead.)
	ErrBadProposal = errors.New("constitution: proposal is not valid JSON")
	// ErrDuplicateVote: Resolve was given two votes of one member.
	ErrDuplicateVote = errors.New("constitution: duplicate vote")
	// ErrNoHost: apply called coco.host but the caller gave no Host.
	ErrNoHost = errors.New("constitution: no host for node actions")
	// ErrPanic: the script engine panicked. The call failed; the package
	// remains usable (every call has its own runtime).
	ErrPanic = errors.New("constitution: script engine panic")
)

// Position is a place in a module's source, as the author wrote it (before
// the ES module transform): 1-based line and column. The zero Position means
// unknown.
type Position struct {
	Line, Column int
}

// String formats p as "line:column", or "" when unknown.
func (p Position) String() string {
	if p.Line == 0 {
		return ""
	}
	return fmt.Sprintf("%d:%d", p.Line, p.Column)
}

// at formats p as a message suffix: " at line:column", or "" when unknown.
func (p Position) at() string {
	if p.Line == 0 {
		return ""
	}
	return " at " + p.String()
}

// CompileError reports a source that cannot become a module: a syntax error
// (with its position) or a missing export (without one).
type CompileError struct {
	Pos     Position
	Message string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("constitution: compile error%s: %s", e.Pos.at(), e.Message)
}

// Is makes a *CompileError match ErrCompile.
func (e *CompileError) Is(target error) bool { return target == ErrCompile }

// ScriptError reports an exception thrown by a script and not caught by it.
type ScriptError struct {
	// Call is what was running: "validate", "resolve", "apply", "vote", or
	// "module" for the module's top level.
	Call string
	// Message is the thrown value as a string, e.g. "TypeError: x is
	// undefined" or, for throw "boom", "boom".
	Message string
	// Pos is the innermost script position on the exception's stack.
	Pos Position
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("constitution: %s threw %s%s", e.Call, e.Message, e.Pos.at())
}

// Is makes a *ScriptError match ErrScript.
func (e *ScriptError) Is(target error) bool { return target == ErrScript }

// LimitKind names the limit a script exceeded.
type LimitKind string

// The limits (see Limits).
const (
	LimitTime   LimitKind = "time"
	LimitMemory LimitKind = "memory"
	LimitStack  LimitKind = "stack"
)

// LimitError reports a script stopped by one of its Limits.
type LimitError struct {
	Kind LimitKind
	// Call is what was running, as in ScriptError.
	Call string
	// Limits are the limits the call ran under; Kind says which one it hit.
	Limits Limits
	// Pos is where the script was stopped, when known.
	Pos Position
}

func (e *LimitError) Error() string {
	var limit string
	switch e.Kind {
	case LimitTime:
		limit = e.Limits.Time.String()
	case LimitMemory:
		limit = fmt.Sprintf("%d bytes of heap growth", e.Limits.MaxHeapGrowth)
	case LimitStack:
		limit = fmt.Sprintf("%d nested calls", e.Limits.MaxCallStackSize)
	}
	return fmt.Sprintf("constitution: %s stopped by the %s limit (%s)%s", e.Call, e.Kind, limit, e.Pos.at())
}

// Is makes a *LimitError match ErrLimit.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }
