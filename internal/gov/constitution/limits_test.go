package constitution

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// limitCase is a script that must be stopped by a limit.
type limitCase struct {
	name string
	body string // the body of resolve
	lim  Limits
	kind LimitKind
}

// The limits not under test are generous, so that the one under test is
// what stops the script.
var limitCases = []limitCase{
	{"infinite loop", "while (true) {}", Limits{Time: 200 * time.Millisecond}, LimitTime},
	{"loop catching everything", "for (;;) { try { while (true) {} } catch (e) {} finally { continue; } }", Limits{Time: 200 * time.Millisecond}, LimitTime},
	{"allocation bomb", `let a = []; while (true) a.push("x".repeat(1e6));`, Limits{Time: time.Minute, MaxHeapGrowth: 32 << 20}, LimitMemory},
	{"object bomb", `let a = []; for (let i = 0; ; i++) a.push({i, s: "y" + i});`, Limits{Time: time.Minute, MaxHeapGrowth: 32 << 20}, LimitMemory},
	{"one huge string", `return "x".repeat(1e10);`, Limits{Time: time.Minute}, LimitMemory},
	{"one huge padding", `return "x".padStart(2 ** 31);`, Limits{Time: time.Minute}, LimitMemory},
	{"deep recursion", "function f(n) { return f(n + 1) + 1; } return f(0);", Limits{Time: time.Minute}, LimitStack},
	{"recursion through a built-in", "function f() { return [1].map(f); } return f();", Limits{Time: time.Minute}, LimitStack},
	{"recursion caught", "function f() { try { return f(); } catch (e) { return f(); } } return f();", Limits{Time: time.Minute}, LimitStack},
}

// TestLimits: each runaway script is stopped with a *LimitError of the right
// kind, and the next call, on a good script, works.
func TestLimits(t *testing.T) {
	good := mustDefault(t)
	for _, tc := range limitCases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustCompile(t, module(map[string]string{"resolve": "export function resolve() { " + tc.body + " }"}), tc.lim)
			start := time.Now()
			_, err := c.Resolve(context.Background(), newMemKV(), "{}", "m0", nil)
			took := time.Since(start)
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, ErrLimit) {
				t.Fatalf("Resolve: %v, want a *LimitError", err)
			}
			if le.Kind != tc.kind || le.Call != "resolve" {
				t.Fatalf("stopped by %s in %s, want %s in resolve: %v", le.Kind, le.Call, tc.kind, err)
			}
			if le.Pos.Line == 0 {
				t.Errorf("no position: %v", err)
			}
			t.Logf("%v after %v", err, took.Round(time.Millisecond))

			if _, err := good.Validate(context.Background(), `{"actions":[{"name":"trigger_ledger_rekey"}]}`); err != nil {
				t.Fatalf("next call: %v", err)
			}
		})
	}
}

// TestLimitsAtTopLevel: Compile runs the top level under the limits.
func TestLimitsAtTopLevel(t *testing.T) {
	_, err := Compile(module(nil)+"while (true) {}", Limits{Time: 100 * time.Millisecond})
	var le *LimitError
	if !errors.As(err, &le) || le.Kind != LimitTime || le.Call != "module" {
		t.Fatalf("Compile: %v", err)
	}
}

// TestLimitInResultConversion: a result whose getter loops is stopped too.
func TestLimitInResultConversion(t *testing.T) {
	c := mustCompile(t, module(map[string]string{"validate": "export function validate() { return {get valid() { while (true) {} }}; }"}), Limits{Time: 100 * time.Millisecond})
	_, err := c.Validate(context.Background(), "{}")
	var le *LimitError
	if !errors.As(err, &le) || le.Kind != LimitTime {
		t.Fatalf("Validate: %v", err)
	}
}

// TestGarbageIsNotHeldAgainstAScript: a script that allocates many times
// its heap limit, but keeps nothing, is not stopped.
func TestGarbageIsNotHeldAgainstAScript(t *testing.T) {
	c := mustCompile(t, module(map[string]string{"resolve": `export function resolve() {
		let n = 0;
		for (let i = 0; i < 64; i++) n += "x".repeat(1 << 20).length;
		return n === 64 << 20 ? "Open" : "Rejected";
	}`}), Limits{Time: time.Minute, MaxHeapGrowth: 16 << 20})
	if st, err := c.Resolve(context.Background(), newMemKV(), "{}", "", nil); err != nil || st != StateOpen {
		t.Fatalf("Resolve: %v, %v", st, err)
	}
}

// TestContextCancel: cancelling the context stops a running script. The
// script cancels it itself (through the KV), so the test needs no timing.
func TestContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	kv := newMemKV()
	kv.onGet = func(string, string) { cancel() }
	c := mustCompile(t, module(map[string]string{"resolve": `export function resolve() {
		coco.kv.get("public:coco.gov.t", "k");
		while (true) {}
	}`}), Limits{Time: time.Minute})
	_, err := c.Resolve(ctx, kv, "{}", "", nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrLimit) {
		t.Fatalf("Resolve: %v", err)
	}
	// A cancelled context does not start a call.
	if _, err := mustDefault(t).Validate(ctx, `{"actions":[]}`); !errors.Is(err, context.Canceled) {
		t.Fatalf("Validate with a cancelled context: %v", err)
	}
}

// TestPanicRecovered: a panic in the caller's KV, under the script, becomes
// ErrPanic, and the package still works.
func TestPanicRecovered(t *testing.T) {
	kv := newMemKV()
	kv.onGet = func(string, string) { panic("kv bug") }
	c := mustCompile(t, module(map[string]string{"resolve": `export function resolve() {
		try { coco.kv.get("public:coco.gov.t", "k"); } catch (e) {}
		return "Open";
	}`}), Limits{})
	_, err := c.Resolve(context.Background(), kv, "{}", "", nil)
	if !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "kv bug") {
		t.Fatalf("Resolve: %v", err)
	}
	if st, err := c.Resolve(context.Background(), newMemKV(), "{}", "", nil); err != nil || st != StateOpen {
		t.Fatalf("next call: %v, %v", st, err)
	}
}

// TestConcurrentCalls: calls on one Constitution from many goroutines (for
// the race detector).
func TestConcurrentCalls(t *testing.T) {
	c := mustDefault(t)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := c.Validate(context.Background(), `{"actions":[{"name":"trigger_ledger_rekey"}]}`)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
