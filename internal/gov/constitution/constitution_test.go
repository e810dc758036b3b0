package constitution

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cocoledger/coco/internal/ids"
)

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      error  // sentinel
		pos       string // expected position, "" for none
		msg       string // substring of the error
	}{
		{"syntax", "export function validate() {}\nexport function resolve() {\n  return 'Open' +;\n}\nexport function apply() {}", ErrCompile, "3:18", "Unexpected"},
		{"missing resolve", "export function validate() {}\nexport function apply() {}", ErrCompile, "", `does not export a function "resolve"`},
		{"not a function", module(map[string]string{"resolve": "export const resolve = 'Open';"}), ErrCompile, "", `"resolve"`},
		{"default export only", "export default function resolve() {}", ErrCompile, "", `"validate"`},
		{"top level throws", module(nil) + "null.x;", ErrScript, "4:", "TypeError"},
		{"import", "import {x} from './lib.js';\n" + module(nil), ErrScript, "1:", `imports are not supported`},
		{"top-level await", module(nil) + "await 1;", ErrCompile, "4:1", "await"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.src, Limits{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Compile: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			var pos Position
			var ce *CompileError
			var se *ScriptError
			switch {
			case errors.As(err, &ce):
				pos = ce.Pos
			case errors.As(err, &se):
				pos = se.Pos
				if se.Call != "module" {
					t.Errorf("Call = %q, want module", se.Call)
				}
			}
			if !strings.HasPrefix(pos.String(), tc.pos) || (tc.pos == "") != (pos == Position{}) {
				t.Errorf("position %q, want %q", pos, tc.pos)
			}
		})
	}
}

func TestCompileBallotErrors(t *testing.T) {
	if _, err := CompileBallot("export function vote() { return true }", Limits{}); err != nil {
		t.Fatal(err)
	}
	_, err := CompileBallot("export function resolve() {}", Limits{})
	if !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), `"vote"`) {
		t.Fatalf("CompileBallot without vote: %v", err)
	}
}

func TestValidateResult(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		body string
		want Validation
		err  error
	}{
		{`return {valid: true, description: "fine"}`, Validation{true, "fine"}, nil},
		{`return {valid: false}`, Validation{false, ""}, nil},
		{`return {valid: false, description: null}`, Validation{false, ""}, nil},
		{`return true`, Validation{}, ErrBadResult},
		{`return {valid: "yes"}`, Validation{}, ErrBadResult},
		{`return {valid: true, description: 5}`, Validation{}, ErrBadResult},
		{`return {get valid() { throw new Error("getter") }}`, Validation{}, ErrScript},
		{`throw "boom"`, Validation{}, ErrScript},
	} {
		c := mustCompile(t, module(map[string]string{"validate": "export function validate(input) { " + tc.body + " }"}), Limits{})
		got, err := c.Validate(ctx, `{"actions":[]}`)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tc.body, got, err, tc.want, tc.err)
		}
	}
}

func TestValidateGetsInput(t *testing.T) {
	c := mustCompile(t, module(map[string]string{"validate": "export function validate(input) { return {valid: typeof input === 'string', description: input} }"}), Limits{})
	got, err := c.Validate(context.Background(), `{"a": [1, 2]}`)
	if err != nil || got != (Validation{true, `{"a": [1, 2]}`}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	// Not JSON: invalid without running the script.
	got, err = c.Validate(context.Background(), `{"a": `)
	if err != nil || got.Valid || !strings.Contains(got.Description, "not valid JSON") {
		t.Fatalf("non-JSON: got %+v, %v", got, err)
	}
	// Nesting beyond encoding/json's limit never reaches the script.
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	got, err = c.Validate(context.Background(), deep)
	if err != nil || got.Valid {
		t.Fatalf("deep: got %+v, %v", got, err)
	}
}

func TestResolveArgumentsAndResult(t *testing.T) {
	ctx := context.Background()
	c := mustCompile(t, module(map[string]string{"resolve": `export function resolve(proposal, proposer, votes) {
		if (JSON.parse(proposal).x !== 1) throw new Error("proposal");
		if (proposer !== "m0") throw new Error("proposer");
		const s = votes.map((v) => v.member_id + "=" + v.vote).join(",");
		return {"a=true,b=false": "Accepted", "": "Open", "a=false": "Rejected"}[s] ?? s;
	}`}), Limits{})
	for _, tc := range []struct {
		votes []Vote
		want  State
		err   error
	}{
		{[]Vote{{"a", true}, {"b", false}}, StateAccepted, nil},
		{nil, StateOpen, nil},
		{[]Vote{{"a", false}}, StateRejected, nil},
		{[]Vote{{"c", true}}, "", ErrBadResult},
		{[]Vote{{"a", true}, {"a", false}}, "", ErrDuplicateVote},
	} {
		got, err := c.Resolve(ctx, newMemKV(), `{"x": 1}`, "m0", tc.votes)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%v: got %q, %v; want %q, %v", tc.votes, got, err, tc.want, tc.err)
		}
	}
	if _, err := c.Resolve(ctx, newMemKV(), `{"x": `, "m0", nil); !errors.Is(err, ErrBadProposal) {
		t.Errorf("non-JSON proposal: %v", err)
	}
}

func TestApplyArguments(t *testing.T) {
	c := mustCompile(t, module(map[string]string{"apply": `export function apply(proposal, id) {
		coco.kv.set("public:coco.gov.log", id, proposal);
	}`}), Limits{})
	kv := newMemKV()
	if err := c.Apply(context.Background(), kv, nil, `{"actions":[]}`, "p7"); err != nil {
		t.Fatal(err)
	}
	if got := kv.tables["public:coco.gov.log"]["p7"]; got != `{"actions":[]}` {
		t.Fatalf("apply wrote %q", got)
	}
	if err := c.Apply(context.Background(), kv, nil, `nope`, "p8"); !errors.Is(err, ErrBadProposal) {
		t.Fatalf("non-JSON proposal: %v", err)
	}
}

// TestKVAPI exercises coco.kv on every phase: what is allowed, and that the
// refusals throw naming the function, the table and the reason.
func TestKVAPI(t *testing.T) {
	ctx := context.Background()
	kv := newMemKV()
	kv.tables["public:coco.gov.t"] = map[string]string{"b": "2", "a": "1", "c": "3"}
	kv.tables["private"] = map[string]string{"k": "secret"}

	reads := `
		const got = [coco.kv.get("public:coco.gov.t", "a"), String(coco.kv.get("public:coco.gov.t", "zz"))];
		got.push(coco.kv.keys("public:coco.gov.t").join(""), coco.kv.keys("public:nothing").length);
		coco.kv.forEach("public:coco.gov.t", (k, v) => got.push(k + v));
		if (got.join(",") !== "1,undefined,abc,0,a1,b2,c3") throw new Error(got.join(","));`

	// Reads work in resolve, ballots and apply.
	c := mustCompile(t, module(map[string]string{
		"resolve": "export function resolve() {" + reads + " return 'Open'; }",
		"apply":   "export function apply() {" + reads + " }",
	}), Limits{})
	if _, err := c.Resolve(ctx, kv, "{}", "", nil); err != nil {
		t.Errorf("reads in resolve: %v", err)
	}
	if err := c.Apply(ctx, kv, nil, "{}", "p"); err != nil {
		t.Errorf("reads in apply: %v", err)
	}
	b, err := CompileBallot("export function vote() {"+reads+" return true; }", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Vote(ctx, kv, "{}", ""); err != nil {
		t.Errorf("reads in a ballot: %v", err)
	}

	// Writes work in apply, to governance tables.
	c = mustCompile(t, module(map[string]string{"apply": `export function apply() {
		coco.kv.set("public:coco.gov.t", "d", "4");
		coco.kv.delete("public:coco.gov.t", "a");
		coco.kv.delete("public:coco.gov.t", "absent");
	}`}), Limits{})
	if err := c.Apply(ctx, kv, nil, "{}", "p"); err != nil {
		t.Fatalf("writes in apply: %v", err)
	}
	if want := "put public:coco.gov.t d = 4|delete public:coco.gov.t a|delete public:coco.gov.t absent"; strings.Join(kv.log, "|") != want {
		t.Fatalf("log %q, want %q", kv.log, want)
	}

	refused := []struct {
		name, export, body, msg string
	}{
		{"write in resolve", "resolve", `coco.kv.set("public:coco.gov.t", "x", "1")`, "coco.kv.set: the KV is read-only during resolve"},
		{"delete in resolve", "resolve", `coco.kv.delete("public:coco.gov.t", "a")`, "coco.kv.delete: the KV is read-only during resolve"},
		{"read in validate", "validate", `coco.kv.get("public:coco.gov.t", "a")`, "coco.kv.get: the KV is not available during validate"},
		{"forEach in validate", "validate", `coco.kv.forEach("public:coco.gov.t", () => {})`, "not available during validate"},
		{"host in resolve", "resolve", `coco.host("trigger_ledger_rekey", {})`, "coco.host: node actions are only available during apply"},
		{"private read", "apply", `coco.kv.get("private", "k")`, `coco.kv.get: table "private" is private`},
		{"private keys", "resolve", `coco.kv.keys("secrets")`, `table "secrets" is private`},
		{"write outside gov", "apply", `coco.kv.set("public:app.data", "k", "v")`, `coco.kv.set: table "public:app.data" is not writable`},
		{"delete outside gov", "apply", `coco.kv.delete("public:coco.govx", "k")`, `table "public:coco.govx" is not writable`},
		{"write inside forEach", "apply", `coco.kv.forEach("public:coco.gov.t", (k) => coco.kv.delete("public:coco.gov.t", k))`, "coco.kv.delete: not allowed inside coco.kv.forEach"},
		{"non-string value", "apply", `coco.kv.set("public:coco.gov.t", "k", {a: 1})`, "coco.kv.set: value must be a string, not an object"},
		{"non-string key", "resolve", `coco.kv.get("public:coco.gov.t", 1)`, "coco.kv.get: key must be a string, not 1"},
		{"bad callback", "resolve", `coco.kv.forEach("public:coco.gov.t", 1)`, "callback must be a function"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			kv.log = nil
			c := mustCompile(t, module(map[string]string{tc.export: "export function " + tc.export + "() { " + tc.body + "; return 'Open'; }"}), Limits{})
			switch tc.export {
			case "validate":
				_, err = c.Validate(ctx, "{}")
			case "resolve":
				_, err = c.Resolve(ctx, kv, "{}", "", nil)
			case "apply":
				err = c.Apply(ctx, kv, nil, "{}", "p")
			}
			var se *ScriptError
			if !errors.As(err, &se) || se.Call != tc.export || !strings.HasPrefix(se.Message, "TypeError: ") || !strings.Contains(se.Message, tc.msg) {
				t.Fatalf("got %v, want a TypeError in %s containing %q", err, tc.export, tc.msg)
			}
			if len(kv.log) != 0 {
				t.Fatalf("refused use wrote %q", kv.log)
			}
		})
	}

	// A ballot is read-only too, and the refusal can be caught.
	b, err = CompileBallot(`export function vote() {
		try { coco.kv.set("public:coco.gov.t", "x", "1"); } catch (e) { return e.message.includes("read-only during vote"); }
		return false;
	}`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.Vote(ctx, kv, "{}", ""); err != nil || !v {
		t.Fatalf("ballot write: %v, %v", v, err)
	}

	// The top level has no KV: Compile refuses a module that reads at load.
	_, err = Compile(module(nil)+`coco.kv.get("public:coco.gov.t", "a");`, Limits{})
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "not available at a module's top level") {
		t.Fatalf("top-level read: %v", err)
	}
}

// TestKVFailureStopsScript: an error of the caller's KV stops apply even if
// the script catches exceptions, and comes back wrapped.
func TestKVFailureStopsScript(t *testing.T) {
	kv := newMemKV()
	kv.failWrites = errors.New("disk on fire")
	c := mustCompile(t, module(map[string]string{"apply": `export function apply() {
		try { coco.kv.set("public:coco.gov.t", "k", "v"); } catch (e) {}
		coco.kv.get("public:coco.gov.t", "k");
	}`}), Limits{})
	err := c.Apply(context.Background(), kv, nil, "{}", "p")
	if !errors.Is(err, kv.failWrites) || !strings.Contains(err.Error(), `coco.kv.set("public:coco.gov.t", "k")`) {
		t.Fatalf("Apply: %v", err)
	}
}

func TestHost(t *testing.T) {
	ctx := context.Background()
	c := mustCompile(t, module(map[string]string{"apply": `export function apply() {
		coco.host("transition_node_to_trusted", {node_id: "n1", extra: [1, "x"]});
		coco.host("trigger_ledger_rekey");
	}`}), Limits{})
	h := &recHost{}
	if err := c.Apply(ctx, newMemKV(), h, "{}", "p"); err != nil {
		t.Fatal(err)
	}
	want := `host transition_node_to_trusted {"node_id":"n1","extra":[1,"x"]}|host trigger_ledger_rekey {}`
	if got := strings.Join(h.log, "|"); got != want {
		t.Fatalf("host got %q, want %q", got, want)
	}

	// A host error cannot be caught and comes back wrapped.
	h = &recHost{fail: errors.New("no such node")}
	c = mustCompile(t, module(map[string]string{"apply": `export function apply() {
		try { coco.host("remove_node", {node_id: "n1"}); } catch (e) {}
	}`}), Limits{})
	if err := c.Apply(ctx, newMemKV(), h, "{}", "p"); !errors.Is(err, h.fail) {
		t.Fatalf("host failure: %v", err)
	}
	if err := c.Apply(ctx, newMemKV(), nil, "{}", "p"); !errors.Is(err, ErrNoHost) {
		t.Fatalf("nil host: %v", err)
	}

	// A built-in exported and called directly never reaches an instruction
	// where the interrupt would fire; the failure must still count.
	c = mustCompile(t, module(map[string]string{"apply": `export const apply = coco.host.bind(null, "trigger_ledger_rekey", {});`}), Limits{})
	if err := c.Apply(ctx, newMemKV(), nil, "{}", "p"); !errors.Is(err, ErrNoHost) {
		t.Fatalf("exported built-in: %v", err)
	}
}

func TestHelpers(t *testing.T) {
	id := testIdentity(t, "alice")
	src := `export function vote(proposal) {
		const p = JSON.parse(proposal);
		const out = [coco.sha256hex("abc"), coco.parsePEMCertID(p.cert), coco.parsePEMPublicKey(p.key)];
		for (const bad of ["", "junk", p.key, p.cert + "trailing"]) {
			try { coco.parsePEMCertID(bad); out.push("accepted " + bad); } catch (e) { out.push(e.message); }
		}
		throw new Error(out.join("|"));
	}`
	b, err := CompileBallot(src, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Vote(context.Background(), newMemKV(), `{"cert":`+jsonString(id.certPEM)+`,"key":`+jsonString(x25519PEM(t))+`}`, "")
	var se *ScriptError
	if !errors.As(err, &se) {
		t.Fatalf("Vote: %v", err)
	}
	got := strings.Split(strings.TrimPrefix(se.Message, "Error: "), "|")
	want := []string{
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		id.id,
		"X25519",
		"coco.parsePEMCertID: not PEM",
		"coco.parsePEMCertID: not PEM",
		`coco.parsePEMCertID: PEM block is "PUBLIC KEY", want "CERTIFICATE"`,
		"coco.parsePEMCertID: data after the PEM block",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if id.id != ids.Fingerprint(mustDER(t, id.certPEM)) {
		t.Fatal("test identity id is not ids.Fingerprint of its DER")
	}
}

// TestDeterminism: no clock, no randomness, no GC-observing built-ins.
func TestDeterminism(t *testing.T) {
	for _, expr := range []string{
		"Date.now()",
		"new Date()",
		"new Date(0).getHours()",
		"Math.random()",
		"new WeakRef({})",
		"new FinalizationRegistry(() => {})",
	} {
		b, err := CompileBallot("export function vote() { "+expr+"; return true; }", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Vote(context.Background(), newMemKV(), "{}", "")
		if !errors.Is(err, ErrScript) {
			t.Errorf("%s: %v, want a script error", expr, err)
		}
	}
	// The rest of Math is there.
	b, err := CompileBallot("export function vote() { return Math.max(1, Math.floor(2.5)) === 2 && typeof Math.random === 'function'; }", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.Vote(context.Background(), newMemKV(), "{}", ""); err != nil || !v {
		t.Fatalf("Math: %v, %v", v, err)
	}
}

func TestScriptErrorPosition(t *testing.T) {
	c := mustCompile(t, "// a comment\nexport function validate(input) {\n  const x = 1;\n  throw new RangeError('bad ' + x);\n}\n"+
		"export function resolve() {}\nexport function apply() {}\n", Limits{})
	_, err := c.Validate(context.Background(), "{}")
	var se *ScriptError
	if !errors.As(err, &se) {
		t.Fatalf("Validate: %v", err)
	}
	if se.Call != "validate" || se.Message != "RangeError: bad 1" || se.Pos != (Position{Line: 4, Column: 9}) {
		t.Fatalf("got %+v", *se)
	}
	if want := "constitution: validate threw RangeError: bad 1 at 4:9"; err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err, want)
	}
}

// TestHostileException: an exception whose toString loops or throws is
// still reported, within the limits.
func TestHostileException(t *testing.T) {
	for _, thrown := range []string{
		"{toString() { throw new Error('again'); }}",
		"{toString() { while (true) {} }}",
	} {
		c := mustCompile(t, module(map[string]string{"validate": "export function validate() { throw " + thrown + "; }"}), Limits{Time: 100 * time.Millisecond})
		if _, err := c.Validate(context.Background(), "{}"); !errors.Is(err, ErrScript) && !errors.Is(err, ErrLimit) {
			t.Errorf("throw %s: %v", thrown, err)
		}
	}
}

// TestVetoSharesDefault: the veto sample is its own resolve followed by
// the default constitution's rest, and compiles.
func TestVetoSharesDefault(t *testing.T) {
	d, v := DefaultSource(), VetoSource()
	if strings.Count(d, resolveMarker) != 1 || strings.Count(v, resolveMarker) != 1 {
		t.Fatal("each constitution must have exactly one resolve marker")
	}
	if d[strings.Index(d, resolveMarker):] != v[strings.Index(v, resolveMarker):] {
		t.Fatal("veto.js differs from default.js after the resolve section")
	}
	if !strings.Contains(v, "vetoMembers") {
		t.Fatal("the veto sample lost its resolve")
	}
	if _, err := Compile(v, Limits{}); err != nil {
		t.Fatal(err)
	}
}

func TestProgramCacheBounded(t *testing.T) {
	c := newProgramCache(2)
	p, err := compileModule("export function vote() { return true }")
	if err != nil {
		t.Fatal(err)
	}
	c.put([32]byte{1}, p)
	c.put([32]byte{2}, p)
	c.get([32]byte{1}) // 1 is now the most recently used
	c.put([32]byte{3}, p)
	if c.get([32]byte{2}) != nil || c.get([32]byte{1}) == nil || c.get([32]byte{3}) == nil || len(c.items) != 2 {
		t.Fatalf("cache holds %d items, wrong ones evicted", len(c.items))
	}
}
