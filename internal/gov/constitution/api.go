package constitution

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math"
	"strings"

	"github.com/dop251/goja"

	"github.com/cocoledger/coco/internal/ids"
)

// Table prefixes the KV API enforces.
const (
	// readablePrefix: scripts read only public tables, so that every
	// governance decision can be re-verified from the public ledger alone.
	readablePrefix = "public:"
	// writablePrefix: apply writes only governance tables.
	writablePrefix = "public:coco.gov."
)

// install prepares a fresh runtime: removes what would make scripts
// non-deterministic, guards the built-ins that build a large string from a
// small input, and defines the globals coco and require.
func (s *session) install() {
	vm := s.vm
	g := vm.GlobalObject()

	// No clock: Date is removed outright, because even Date with explicit
	// arguments reads the host's time zone. No randomness: Math.random
	// throws. No GC-dependent behaviour: WeakRef and FinalizationRegistry
	// are removed (where the engine has them).
	for _, name := range []string{"Date", "WeakRef", "FinalizationRegistry"} {
		s.must(g.Delete(name))
	}
	s.must(g.Get("Math").(*goja.Object).Set("random", func(goja.FunctionCall) goja.Value {
		panic(vm.NewTypeError("Math.random is not available: governance scripts must be deterministic"))
	}))
	s.stringify, _ = goja.AssertFunction(g.Get("JSON").(*goja.Object).Get("stringify"))

	s.guardStringBuilders()

	// esbuild turns an import into a call of require.
	s.must(vm.Set("require", func(call goja.FunctionCall) goja.Value {
		panic(vm.NewTypeError(fmt.Sprintf("imports are not supported: a module is one self-contained source (import of %q)", call.Argument(0).String())))
	}))

	kv := vm.NewObject()
	s.must(kv.Set("get", s.kvGet))
	s.must(kv.Set("keys", s.kvKeys))
	s.must(kv.Set("forEach", s.kvForEach))
	s.must(kv.Set("set", s.kvSet))
	s.must(kv.Set("delete", s.kvDelete))
	coco := vm.NewObject()
	s.must(coco.Set("kv", kv))
	s.must(coco.Set("host", s.hostAction))
	s.must(coco.Set("sha256hex", s.sha256hex))
	s.must(coco.Set("parsePEMCertID", s.parsePEMCertID))
	s.must(coco.Set("parsePEMPublicKey", s.parsePEMPublicKey))
	s.must(coco.Set("checkConstitution", s.checkConstitution))
	s.must(vm.Set("coco", coco))
}

// must panics on a setup error: defining properties on fresh objects of a
// fresh runtime cannot fail.
func (s *session) must(err error) {
	if err != nil {
		panic(fmt.Sprintf("constitution: runtime setup: %v", err))
	}
}

// throw raises a TypeError in the script.
func (s *session) throw(format string, args ...any) {
	panic(s.vm.NewTypeError(fmt.Sprintf(format, args...)))
}

// str returns argument i as a string, or throws naming fn and what.
func (s *session) str(call goja.FunctionCall, i int, fn, what string) string {
	v := call.Argument(i)
	if !goja.IsString(v) {
		s.throw("%s: %s must be a string, not %s", fn, what, describe(v))
	}
	return v.String()
}

// guardStringBuilders wraps String.prototype.repeat, padStart and padEnd,
// which build a string of any size from a small input inside one built-in
// call, where an interrupt cannot reach. A result larger than MaxHeapGrowth
// stops the script with a memory LimitError before it is built.
func (s *session) guardStringBuilders() {
	vm := s.vm
	proto := vm.Get("String").(*goja.Object).Get("prototype").(*goja.Object)
	for _, name := range []string{"repeat", "padStart", "padEnd"} {
		orig, _ := goja.AssertFunction(proto.Get(name))
		s.must(proto.Set(name, func(call goja.FunctionCall) goja.Value {
			if goja.IsUndefined(call.This) || goja.IsNull(call.This) {
				return s.callThrough(orig, call.This, call.Arguments)
			}
			// Convert this and the count once, here, so that a script's
			// toString or valueOf runs once, as it would unguarded.
			str := call.This.String()
			n := call.Argument(0).ToFloat()
			size := n
			if name == "repeat" {
				size = float64(len(str)) * n
			}
			if !math.IsInf(size, 0) && size > float64(s.lim.MaxHeapGrowth) {
				s.abort(&LimitError{Kind: LimitMemory})
				return goja.Undefined()
			}
			args := append([]goja.Value{vm.ToValue(n)}, call.Arguments[min(1, len(call.Arguments)):]...)
			return s.callThrough(orig, vm.ToValue(str), args)
		}))
	}
}

// callThrough calls fn from a native function, re-raising what it throws.
func (s *session) callThrough(fn goja.Callable, this goja.Value, args []goja.Value) goja.Value {
	v, err := fn(this, args...)
	if err != nil {
		panic(err)
	}
	return v
}

// canRead throws unless the KV may be read now from table.
func (s *session) canRead(fn, table string) {
	switch s.phase {
	case phaseModule:
		s.throw("%s: the KV is not available at a module's top level", fn)
	case phaseValidate:
		s.throw("%s: the KV is not available during validate, which must be pure", fn)
	}
	if !strings.HasPrefix(table, readablePrefix) {
		s.throw("%s: table %q is private: governance reads only public tables (%q…), so that its decisions can be re-verified from the public ledger", fn, table, readablePrefix)
	}
}

// canWrite throws unless the KV may be written now to table.
func (s *session) canWrite(fn, table string) {
	s.canRead(fn, table)
	if s.phase != phaseApply {
		s.throw("%s: the KV is read-only during %s", fn, s.call)
	}
	if s.iterating > 0 {
		s.throw("%s: not allowed inside coco.kv.forEach", fn)
	}
	if !strings.HasPrefix(table, writablePrefix) {
		s.throw("%s: table %q is not writable: governance writes only tables whose name starts with %q", fn, table, writablePrefix)
	}
}

func (s *session) kvGet(call goja.FunctionCall) goja.Value {
	table, key := s.str(call, 0, "coco.kv.get", "table"), s.str(call, 1, "coco.kv.get", "key")
	s.canRead("coco.kv.get", table)
	v, ok := s.kv.Get(table, key)
	if !ok {
		return goja.Undefined()
	}
	return s.vm.ToValue(v)
}

func (s *session) kvKeys(call goja.FunctionCall) goja.Value {
	table := s.str(call, 0, "coco.kv.keys", "table")
	s.canRead("coco.kv.keys", table)
	var keys []any
	s.kv.Range(table, func(k, _ string) bool {
		keys = append(keys, k)
		return true
	})
	return s.vm.NewArray(keys...)
}

func (s *session) kvForEach(call goja.FunctionCall) goja.Value {
	table := s.str(call, 0, "coco.kv.forEach", "table")
	fn, ok := goja.AssertFunction(call.Argument(1))
	if !ok {
		s.throw("coco.kv.forEach: the callback must be a function, not %s", describe(call.Argument(1)))
	}
	s.canRead("coco.kv.forEach", table)
	s.iterating++
	defer func() { s.iterating-- }()
	var ferr error
	s.kv.Range(table, func(k, v string) bool {
		_, ferr = fn(goja.Undefined(), s.vm.ToValue(k), s.vm.ToValue(v))
		return ferr == nil
	})
	// Raised only after Range returned, so that the caller's iterator is
	// never unwound by a panic.
	if ferr != nil {
		panic(ferr)
	}
	return goja.Undefined()
}

func (s *session) kvSet(call goja.FunctionCall) goja.Value {
	const fn = "coco.kv.set"
	table, key, value := s.str(call, 0, fn, "table"), s.str(call, 1, fn, "key"), s.str(call, 2, fn, "value")
	s.canWrite(fn, table)
	if err := s.kv.Put(table, key, value); err != nil {
		s.abort(&stopError{err: fmt.Errorf("%s(%q, %q): %w", fn, table, key, err)})
	}
	return goja.Undefined()
}

func (s *session) kvDelete(call goja.FunctionCall) goja.Value {
	const fn = "coco.kv.delete"
	table, key := s.str(call, 0, fn, "table"), s.str(call, 1, fn, "key")
	s.canWrite(fn, table)
	if err := s.kv.Delete(table, key); err != nil {
		s.abort(&stopError{err: fmt.Errorf("%s(%q, %q): %w", fn, table, key, err)})
	}
	return goja.Undefined()
}

// hostAction is coco.host(name, args): a node action, performed by the
// caller's Host with args as JSON.
func (s *session) hostAction(call goja.FunctionCall) goja.Value {
	const fn = "coco.host"
	name := s.str(call, 0, fn, "action name")
	if s.phase != phaseApply {
		s.throw("%s: node actions are only available during apply, not %s", fn, s.call)
	}
	args := call.Argument(1)
	if goja.IsUndefined(args) {
		args = s.vm.NewObject()
	}
	if _, ok := args.(*goja.Object); !ok {
		s.throw("%s: args must be an object, not %s", fn, describe(args))
	}
	if s.host == nil {
		s.abort(&stopError{err: fmt.Errorf("%s(%q): %w", fn, name, ErrNoHost)})
		return goja.Undefined()
	}
	argsJSON := s.callThrough(s.stringify, goja.Undefined(), []goja.Value{args}).String()
	if err := s.host.Action(name, argsJSON); err != nil {
		s.abort(&stopError{err: fmt.Errorf("%s(%q): %w", fn, name, err)})
	}
	return goja.Undefined()
}

// sha256hex is coco.sha256hex(s): lowercase hex SHA-256 of s's UTF-8 bytes.
func (s *session) sha256hex(call goja.FunctionCall) goja.Value {
	sum := sha256.Sum256([]byte(s.str(call, 0, "coco.sha256hex", "the argument")))
	return s.vm.ToValue(hex.EncodeToString(sum[:]))
}

// pemBlock decodes exactly one PEM block of type typ, or throws.
func (s *session) pemBlock(fn, text, typ string) []byte {
	b, rest := pem.Decode([]byte(text))
	switch {
	case b == nil:
		s.throw("%s: not PEM", fn)
	case b.Type != typ:
		s.throw("%s: PEM block is %q, want %q", fn, b.Type, typ)
	case strings.TrimSpace(string(rest)) != "":
		s.throw("%s: data after the PEM block", fn)
	}
	return b.Bytes
}

// parsePEMCertID is coco.parsePEMCertID(pem): the member or user id of an
// X.509 certificate, the lowercase hex SHA-256 of its DER (ids.Fingerprint).
func (s *session) parsePEMCertID(call goja.FunctionCall) goja.Value {
	const fn = "coco.parsePEMCertID"
	der := s.pemBlock(fn, s.str(call, 0, fn, "the certificate"), "CERTIFICATE")
	if _, err := x509.ParseCertificate(der); err != nil {
		s.throw("%s: %v", fn, err)
	}
	return s.vm.ToValue(ids.Fingerprint(der))
}

// parsePEMPublicKey is coco.parsePEMPublicKey(pem): the algorithm of a PEM
// "PUBLIC KEY" (PKIX): "X25519", "P-256", "P-384", "P-521", "Ed25519" or
// "RSA".
func (s *session) parsePEMPublicKey(call goja.FunctionCall) goja.Value {
	const fn = "coco.parsePEMPublicKey"
	der := s.pemBlock(fn, s.str(call, 0, fn, "the key"), "PUBLIC KEY")
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		s.throw("%s: %v", fn, err)
	}
	var alg string
	switch k := pub.(type) {
	case *ecdh.PublicKey:
		if k.Curve() != ecdh.X25519() {
			s.throw("%s: unsupported ECDH curve", fn)
		}
		alg = "X25519"
	case *ecdsa.PublicKey:
		alg = k.Curve.Params().Name
	case ed25519.PublicKey:
		alg = "Ed25519"
	case *rsa.PublicKey:
		alg = "RSA"
	default:
		s.throw("%s: unsupported key type %T", fn, pub)
	}
	return s.vm.ToValue(alg)
}

// checkConstitution is coco.checkConstitution(src): throws unless src
// compiles as a constitution (Compile), so that set_constitution can refuse
// a source that would leave the service without working governance. It is
// unavailable at a module's top level, which Compile itself runs, so that it
// cannot recurse.
func (s *session) checkConstitution(call goja.FunctionCall) goja.Value {
	const fn = "coco.checkConstitution"
	src := s.str(call, 0, fn, "the source")
	if s.phase == phaseModule {
		s.throw("%s: not available at a module's top level", fn)
	}
	if _, err := compileChecked(s.ctx, src, s.lim, constitutionExports...); err != nil {
		s.throw("%s: %v", fn, err)
	}
	return goja.Undefined()
}
