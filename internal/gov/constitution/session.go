package constitution

import (
	"context"
	"fmt"
	"sync"

	"github.com/dop251/goja"
)

// phase is what part of a module is running; it decides what the coco API
// permits.
type phase int

const (
	phaseModule   phase = iota // the top level: pure helpers only
	phaseValidate              // validate: pure helpers only
	phaseRead                  // resolve and ballots: KV reads
	phaseApply                 // apply: KV reads, governed writes, host actions
)

// session is one call: a fresh runtime, the module's top level, one export.
// Everything but abort runs on the caller's goroutine.
type session struct {
	ctx  context.Context
	lim  Limits
	kv   KV   // nil unless phaseRead or phaseApply
	host Host // may be nil

	vm        *goja.Runtime
	call      string // "module" or the running export, for errors
	phase     phase
	iterating int           // depth of coco.kv.forEach calls in progress
	stringify goja.Callable // the built-in JSON.stringify, before the script can replace it

	mu      sync.Mutex
	stopped any // the first abort's value; later aborts are ignored
}

// stopError is an abort for a reason other than a limit: the context ended,
// or the caller's KV or Host failed. Scripts cannot catch it.
type stopError struct{ err error }

func newSession(ctx context.Context, lim Limits, kv KV, host Host) *session {
	return &session{ctx: ctx, lim: lim, kv: kv, host: host}
}

// abort stops the script at its next instruction with an uncatchable
// interrupt carrying v (*LimitError or *stopError). Safe from any goroutine.
func (s *session) abort(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped != nil {
		return
	}
	s.stopped = v
	s.vm.Interrupt(v)
}

// run evaluates the module prg in a fresh runtime, then body, which calls an
// export and converts its result, all under the session's limits and
// context. Errors come back typed (see fail).
func (s *session) run(prg *goja.Program, body func(exports *goja.Object) error) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("constitution: not started: %w", err)
	}
	s.vm = goja.New()
	s.vm.SetMaxCallStackSize(s.lim.MaxCallStackSize)
	s.install()
	stop := s.watch()
	err := s.guard(func() error {
		s.call, s.phase = "module", phaseModule
		if _, err := s.vm.RunProgram(prg); err != nil {
			return s.fail(err)
		}
		exports, ok := s.vm.Get(moduleGlobal).(*goja.Object)
		if !ok {
			return &CompileError{Message: "the module's exports were overwritten by its top level"}
		}
		return body(exports)
	})
	stop()
	// An abort whose interrupt never reached an instruction (the call
	// ended first, or a built-in was exported and called directly) still
	// fails the call: a KV write or host action may have failed.
	if v := s.stoppedBy(); err == nil && v != nil {
		err = s.stopErr(v, nil)
	}
	return err
}

func (s *session) stoppedBy() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// guard runs f and turns a panic into an error. Goja panics with its
// uncatchable errors when script code that Go called into (a getter, a
// toString) is interrupted; anything else is a bug in the engine or in this
// package, reported as ErrPanic. The runtime is discarded either way.
func (s *session) guard(f func() error) (err error) {
	defer func() {
		x := recover()
		if x == nil {
			return
		}
		switch v := x.(type) {
		case *goja.InterruptedError, *goja.StackOverflowError, *goja.Exception:
			err = s.fail(v.(error))
		default:
			err = fmt.Errorf("%w in %s: %v", ErrPanic, s.call, x)
		}
	}()
	return f()
}

// callExport calls the module's export name in phase ph.
func (s *session) callExport(exports *goja.Object, name string, ph phase, args ...goja.Value) (goja.Value, error) {
	fn, ok := goja.AssertFunction(exports.Get(name))
	if !ok {
		return nil, missingExport(name)
	}
	s.call, s.phase = name, ph
	v, err := fn(goja.Undefined(), args...)
	if err != nil {
		return nil, s.fail(err)
	}
	return v, nil
}

func missingExport(name string) error {
	return &CompileError{Message: fmt.Sprintf("the module does not export a function %q", name)}
}

// fail types an error returned by goja.
func (s *session) fail(err error) error {
	switch e := err.(type) {
	case *goja.StackOverflowError:
		return &LimitError{Kind: LimitStack, Call: s.call, Limits: s.lim, Pos: position(e.Stack())}
	case *goja.InterruptedError:
		return s.stopErr(e.Value(), e.Stack())
	case *goja.Exception:
		return &ScriptError{Call: s.call, Message: s.message(e.Value()), Pos: position(e.Stack())}
	}
	return err
}

// stopErr types an abort's value; stack is where it stopped the script.
func (s *session) stopErr(v any, stack []goja.StackFrame) error {
	switch v := v.(type) {
	case *LimitError:
		v.Call, v.Limits, v.Pos = s.call, s.lim, position(stack)
		return v
	case *stopError:
		return fmt.Errorf("constitution: %s: %w", s.call, v.err)
	}
	return fmt.Errorf("%w in %s: unexpected interrupt %v", ErrPanic, s.call, v)
}

// message renders a thrown value. Its toString is script code and may throw
// or be interrupted in turn; then the value is described, not rendered.
func (s *session) message(v goja.Value) (msg string) {
	defer func() {
		if recover() != nil {
			msg = "an exception whose message cannot be read"
		}
	}()
	if v == nil {
		return "undefined"
	}
	return v.String()
}

// position is the innermost position in the module's source on a goja
// stack. Frames of built-ins have no position, and frames in code esbuild
// added are in the script, not the source; both are skipped. goja returns
// the source map's 0-based column as it is.
func position(stack []goja.StackFrame) Position {
	for _, f := range stack {
		if p := f.Position(); p.Line > 0 && p.Filename == sourceName {
			return Position{Line: p.Line, Column: p.Column + 1}
		}
	}
	return Position{}
}

// describe names a returned value for an ErrBadResult message without
// running script code.
func describe(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	case goja.IsString(v):
		return fmt.Sprintf("%q", v.String())
	}
	if o, ok := v.(*goja.Object); ok {
		if _, ok := goja.AssertFunction(o); ok {
			return "a function"
		}
		return "an object (" + o.ClassName() + ")"
	}
	return v.String()
}

// compileChecked loads src and evaluates its top level once, checking that it
// exports the functions named. It runs the module so that a top level that
// throws, or that overwrites an export with a non-function, is refused at
// compile time rather than at the first call.
func compileChecked(ctx context.Context, src string, lim Limits, exports ...string) (*goja.Program, error) {
	prg, err := load(src)
	if err != nil {
		return nil, err
	}
	s := newSession(ctx, lim, nil, nil)
	err = s.run(prg, func(ex *goja.Object) error {
		for _, name := range exports {
			if _, ok := goja.AssertFunction(ex.Get(name)); !ok {
				return missingExport(name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return prg, nil
}

// errBadResult formats an ErrBadResult.
func errBadResult(call string, got goja.Value, want string) error {
	return fmt.Errorf("%w: %s returned %s, want %s", ErrBadResult, call, describe(got), want)
}
