package gov

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/gov/constitution"
	"github.com/cocoledger/coco/internal/gov/signedreq"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
)

// identity is a member's or user's key and certificate.
type identity struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	id   string
}

// fakeNode is the NodeHost of the scenarios.
type fakeNode struct {
	digest    string
	refuse    string // CheckNodeRemoval's refusal, if any
	rekeys    int
	removable []string
}

func (f *fakeNode) StateDigest() string { return f.digest }

func (f *fakeNode) CheckNodeRemoval(id string) error {
	if f.refuse != "" {
		return errors.New(f.refuse)
	}
	f.removable = append(f.removable, id)
	return nil
}

func (f *fakeNode) Rekey(tx *kv.Tx) error {
	f.rekeys++
	tx.Put("coco.internal.ledger_rekey", []byte("next"), []byte(fmt.Sprint(f.rekeys)))
	return tx.Err()
}

// scenario is one governed service: a store, an engine, the identities it
// knows by name, and a clock the script moves.
type scenario struct {
	store   *kv.Store
	engine  *Engine
	node    *fakeNode
	now     time.Time
	people  map[string]*identity
	names   map[string]string // id → name
	props   map[string]string // alias → proposal id
	aliases map[string]string // proposal id → alias
	last    map[string][]byte // name → last signed request
	service [32]byte
}

func newScenario(t *testing.T) *scenario {
	svcKey, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	svcCert, err := crypto.SelfSign(nil, svcKey, crypto.CertOptions{CommonName: "service", IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{
		store: kv.NewStore(), node: &fakeNode{digest: "00"}, now: time.Unix(1_800_000_000, 0),
		people: map[string]*identity{}, names: map[string]string{}, props: map[string]string{},
		aliases: map[string]string{}, last: map[string][]byte{}, service: sha256.Sum256(svcCert.Raw),
	}
	s.engine = &Engine{ServiceDigest: s.service, Node: s.node, Limits: constitution.Limits{Time: 500 * time.Millisecond}}
	s.commit(t, func(tx *kv.Tx) error {
		if err := putJSON(tx, ServiceInfoTable, ServiceInfoKey, &ServiceInfo{Cert: "service", Status: ServiceOpening}); err != nil {
			return err
		}
		return putJSON(tx, ConstitutionTable, ConstitutionKey, constitution.DefaultSource())
	})
	return s
}

func (s *scenario) person(t *testing.T, name string) *identity {
	if p, ok := s.people[name]; ok {
		return p
	}
	key, err := crypto.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := crypto.SelfSign(nil, key, crypto.CertOptions{CommonName: name, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	p := &identity{key: key, cert: cert, id: ids.Fingerprint(cert.Raw)}
	s.people[name], s.names[p.id] = p, name
	return p
}

// commit runs fn in a transaction and commits it, or discards it if fn
// fails: a refused request writes nothing.
func (s *scenario) commit(t *testing.T, fn func(tx *kv.Tx) error) error {
	tx := s.store.Begin()
	if err := fn(tx); err != nil {
		return err
	}
	if _, err := s.store.Commit(tx, func(ids.Seqno, *kv.WriteSet) error { return nil }); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return nil
}

// sign signs a request of kind for member name; a proposal alias names
// the proposal of a ballot or withdrawal.
func (s *scenario) sign(t *testing.T, name string, kind signedreq.Kind, proposal string, payload []byte, opts ...func(*signedreq.Request)) []byte {
	p := s.person(t, name)
	r := signedreq.Request{Kind: kind, CreatedAt: s.now, ServiceDigest: s.service, ProposalID: proposal, Payload: payload}
	for _, o := range opts {
		o(&r)
	}
	raw, err := signedreq.Sign(nil, p.key, p.cert, r)
	if err != nil {
		t.Fatal(err)
	}
	s.last[name] = raw
	return raw
}

// expand replaces {{cert NAME}} with NAME's certificate as a JSON string
// and {{id NAME}} with its id.
func (s *scenario) expand(t *testing.T, in string) string {
	for {
		i := strings.Index(in, "{{")
		if i < 0 {
			return in
		}
		j := strings.Index(in[i:], "}}")
		if j < 0 {
			t.Fatalf("unclosed {{ in %q", in)
		}
		f := strings.Fields(in[i+2 : i+j])
		if len(f) != 2 {
			t.Fatalf("bad template %q", in[i:i+j+2])
		}
		var sub string
		switch p := s.person(t, f[1]); f[0] {
		case "cert":
			b, _ := json.Marshal(string(crypto.CertPEM(p.cert)))
			sub = string(b)
		case "id":
			sub = p.id
		case "pid":
			sub = s.props[f[1]]
		default:
			t.Fatalf("bad template %q", f[0])
		}
		in = in[:i] + sub + in[i+j+2:]
	}
}

// named replaces ids and proposal ids in out with names and aliases.
func (s *scenario) named(out string) string {
	for id, name := range s.names {
		out = strings.ReplaceAll(out, id, name)
	}
	for id, alias := range s.aliases {
		out = strings.ReplaceAll(out, id, alias)
	}
	other := s.service
	other[0] ^= 1
	out = strings.ReplaceAll(out, hex.EncodeToString(s.service[:]), "<this service>")
	return strings.ReplaceAll(out, hex.EncodeToString(other[:]), "<other service>")
}

func (s *scenario) result(r *Result, err error) string {
	if err != nil {
		return "error: " + s.named(err.Error())
	}
	return s.named(describe(r.ID, &r.Info, s.named))
}

// describe prints a proposal's record, member ids named by name (and
// sorted by that name, so the output does not depend on the keys drawn).
func describe(id string, info *ProposalInfo, name func(string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", id, info.State)
	if len(info.FinalVotes) > 0 {
		var votes []string
		for m, v := range info.FinalVotes {
			votes = append(votes, fmt.Sprintf("%s=%v", name(m), v))
		}
		sort.Strings(votes)
		fmt.Fprintf(&b, " votes[%s]", strings.Join(votes, " "))
	}
	if len(info.VoteFailures) > 0 {
		var fails []string
		for m, f := range info.VoteFailures {
			fails = append(fails, name(m)+": "+f)
		}
		sort.Strings(fails)
		fmt.Fprintf(&b, " vote_failures[%s]", strings.Join(fails, "; "))
	}
	if info.Failure != "" {
		fmt.Fprintf(&b, " (%s)", info.Failure)
	}
	return b.String()
}

func (s *scenario) do(t *testing.T, d *datadriven.TestData) string {
	ctx := context.Background()
	arg := func(i int) string {
		if len(d.CmdArgs) <= i {
			t.Fatalf("%s: missing argument %d", d.Cmd, i)
		}
		return d.CmdArgs[i].Key
	}
	switch d.Cmd {
	case "member": // member NAME [active]: a member named at genesis, acknowledged if active
		name := arg(0)
		p := s.person(t, name)
		if err := s.commit(t, func(tx *kv.Tx) error {
			return putJSON(tx, MembersTable, p.id, &Member{Cert: string(crypto.CertPEM(p.cert)), Status: MemberAccepted})
		}); err != nil {
			return "error: " + err.Error()
		}
		if d.HasArg("active") {
			return s.ack(t, ctx, name, "")
		}
		return "ok"
	case "ack": // ack NAME [digest=D]: ask for the state digest and sign it (or D)
		var digest string
		if d.HasArg("digest") {
			d.ScanArgs(t, "digest", &digest)
		}
		return s.ack(t, ctx, arg(0), digest)
	case "propose": // propose NAME AS=ALIAS, input: the proposal
		name := arg(0)
		var alias string
		d.ScanArgs(t, "as", &alias)
		raw := s.sign(t, name, signedreq.KindProposal, "", []byte(s.expand(t, d.Input)))
		var r *Result
		err := s.commit(t, func(tx *kv.Tx) (err error) {
			r, err = s.engine.Propose(ctx, tx, s.now, raw)
			return err
		})
		if err == nil {
			s.props[alias], s.aliases[r.ID] = r.ID, alias
		}
		return s.result(r, err)
	case "vote": // vote NAME ALIAS yes|no|ballot (input: the JS ballot)
		name, alias := arg(0), arg(1)
		var payload []byte
		switch arg(2) {
		case "yes":
			payload = []byte(`{"vote": true}`)
		case "no":
			payload = []byte(`{"vote": false}`)
		case "ballot":
			payload, _ = json.Marshal(map[string]string{"ballot": d.Input})
		case "raw":
			payload = []byte(d.Input)
		}
		raw := s.sign(t, name, signedreq.KindBallot, s.props[alias], payload)
		return s.submit(t, ctx, func(tx *kv.Tx) (*Result, error) { return s.engine.Vote(ctx, tx, s.now, s.props[alias], raw) })
	case "withdraw": // withdraw NAME ALIAS
		raw := s.sign(t, arg(0), signedreq.KindWithdrawal, s.props[arg(1)], nil)
		return s.submit(t, ctx, func(tx *kv.Tx) (*Result, error) { return s.engine.Withdraw(ctx, tx, s.now, s.props[arg(1)], raw) })
	case "replay": // replay NAME ALIAS: send NAME's last signed ballot again
		raw := s.last[arg(0)]
		return s.submit(t, ctx, func(tx *kv.Tx) (*Result, error) { return s.engine.Vote(ctx, tx, s.now, s.props[arg(1)], raw) })
	case "forged": // forged NAME ALIAS: a ballot by NAME whose signature is another's
		raw := s.sign(t, arg(0), signedreq.KindBallot, s.props[arg(1)], []byte(`{"vote": true}`))
		other := s.sign(t, "forger", signedreq.KindBallot, s.props[arg(1)], []byte(`{"vote": true}`))
		forged := append(append([]byte(nil), raw[:len(raw)-64]...), other[len(other)-64:]...)
		return s.submit(t, ctx, func(tx *kv.Tx) (*Result, error) { return s.engine.Vote(ctx, tx, s.now, s.props[arg(1)], forged) })
	case "other-service": // other-service NAME ALIAS: a ballot meant for another service
		raw := s.sign(t, arg(0), signedreq.KindBallot, s.props[arg(1)], []byte(`{"vote": true}`), func(r *signedreq.Request) { r.ServiceDigest[0] ^= 1 })
		return s.submit(t, ctx, func(tx *kv.Tx) (*Result, error) { return s.engine.Vote(ctx, tx, s.now, s.props[arg(1)], raw) })
	case "show": // show ALIAS
		tx := s.store.Begin()
		info, err := GetProposal(tx, s.props[arg(0)])
		if err != nil {
			return "error: " + err.Error()
		}
		return s.named(describe(s.props[arg(0)], info, s.named))
	case "time": // time +DURATION
		dur, err := time.ParseDuration(strings.TrimPrefix(arg(0), "+"))
		if err != nil {
			t.Fatal(err)
		}
		s.now = s.now.Add(dur)
		return "ok"
	case "node": // node NAME STATUS: a node record as the node package writes it
		return s.errOK(s.commit(t, func(tx *kv.Tx) error {
			return putJSON(tx, NodesTable, s.person(t, arg(0)).id, map[string]string{"status": arg(1), "rpc_address": "127.0.0.1:1"})
		}))
	case "refuse-removal": // refuse-removal REASON...: CheckNodeRemoval refuses from now on
		s.node.refuse = strings.Join(func() []string {
			var out []string
			for _, a := range d.CmdArgs {
				out = append(out, a.Key)
			}
			return out
		}(), " ")
		return "ok"
	case "set-config": // set-config, input: the service configuration JSON
		return s.errOK(s.commit(t, func(tx *kv.Tx) error {
			tx.Put(ServiceConfigTable, []byte(ServiceConfigKey), []byte(strings.TrimSpace(d.Input)))
			return tx.Err()
		}))
	case "state": // state: what governance keeps, by table
		return s.state(t)
	}
	t.Fatalf("unknown command %q", d.Cmd)
	return ""
}

func (s *scenario) errOK(err error) string {
	if err != nil {
		return "error: " + s.named(err.Error())
	}
	return "ok"
}

func (s *scenario) submit(t *testing.T, _ context.Context, fn func(tx *kv.Tx) (*Result, error)) string {
	var r *Result
	err := s.commit(t, func(tx *kv.Tx) (err error) {
		r, err = fn(tx)
		return err
	})
	return s.result(r, err)
}

func (s *scenario) ack(t *testing.T, ctx context.Context, name, digest string) string {
	p := s.person(t, name)
	var given string
	if err := s.commit(t, func(tx *kv.Tx) (err error) {
		given, err = s.engine.RequestAck(tx, ids.MemberID(p.id))
		return err
	}); err != nil {
		return "error: " + s.named(err.Error())
	}
	if digest == "" {
		digest = given
	}
	payload, _ := json.Marshal(ackPayload{StateDigest: digest})
	raw := s.sign(t, name, signedreq.KindAck, "", payload)
	return s.errOK(s.commit(t, func(tx *kv.Tx) error {
		_, err := s.engine.Ack(ctx, tx, s.now, raw)
		return err
	}))
}

// state prints the service status, members, users, nodes, configuration
// and rekeys: what the scenarios' proposals change.
func (s *scenario) state(t *testing.T) string {
	tx := s.store.Begin()
	var b strings.Builder
	var info ServiceInfo
	if _, err := getJSON(tx, ServiceInfoTable, ServiceInfoKey, &info); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "service: %s\n", info.Status)
	for _, table := range []kv.MapName{MembersTable, UsersTable, NodesTable, NodeMeasurementsTable, JoinPolicyTable, ServiceConfigTable} {
		items, _ := tx.Scan(table, nil, nil, 0)
		var lines []string
		for _, it := range items {
			var v map[string]any
			if err := json.Unmarshal(it.Value, &v); err != nil {
				t.Fatal(err)
			}
			delete(v, "cert")
			enc, _ := json.Marshal(v)
			lines = append(lines, s.named(fmt.Sprintf("  %s %s", it.Key, enc)))
		}
		slices.Sort(lines)
		fmt.Fprintf(&b, "%s:\n%s", strings.TrimPrefix(string(table), "public:coco.gov."), strings.Join(lines, "\n"))
		if len(lines) > 0 {
			b.WriteString("\n")
		}
	}
	if raw, ok := tx.Get(ConstitutionTable, []byte(ConstitutionKey)); ok {
		var src string
		_ = json.Unmarshal(raw, &src)
		fmt.Fprintf(&b, "constitution: default=%v\n", src == constitution.DefaultSource())
	}
	fmt.Fprintf(&b, "rekeys: %d", s.node.rekeys)
	return b.String()
}

func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata"), func(t *testing.T, path string) {
		s := newScenario(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string { return s.do(t, d) })
	})
}
