package constitution

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the governance scenarios in testdata/*.txt. Commands:
//
//	members                  body: one member a line, "<name> <status> [data=<json>]";
//	                         replaces the members table
//	constitution default|veto|file=<path under testdata>
//	constitution             body: the constitution's source
//	propose proposer=<name>  body: the proposal; prints validate's verdict and
//	                         clears the votes
//	vote <name> yes|no
//	vote <name> ballot       body: the ballot's source
//	resolve                  evaluates the ballots, then resolve; prints the state
//	apply [id=<proposal id>] prints the KV writes and host actions, or the error
//	show <table>             prints public:coco.gov.<table>
//
// In bodies, {{cert NAME}} and {{id NAME}} expand to a test identity's PEM
// certificate (JSON-quoted) and id, {{key x25519}} and {{key ed25519}} to a
// public key (JSON-quoted). In output, identities' ids and certificates
// print as <NAME> and <cert NAME>.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			s := &scenario{kv: newMemKV()}
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				return s.do(t, d)
			})
		})
	}
}

type scenario struct {
	kv       *memKV
	c        *Constitution
	names    []string // identities used, for the output substitution
	proposer string
	proposal string
	votes    []scenarioVote
}

type scenarioVote struct {
	member string
	vote   bool
	ballot *Ballot
}

func (s *scenario) do(t *testing.T, d *datadriven.TestData) string {
	ctx := context.Background()
	switch d.Cmd {
	case "members":
		s.kv.tables[membersTable] = map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				t.Fatalf("members: bad line %q", line)
			}
			data := "null"
			for _, opt := range f[2:] {
				v, ok := strings.CutPrefix(opt, "data=")
				if !ok {
					t.Fatalf("members: bad option %q", opt)
				}
				data = v
			}
			id := s.identity(t, f[0])
			s.kv.tables[membersTable][id.id] = fmt.Sprintf(`{"cert":%s,"status":%q,"member_data":%s}`, jsonString(id.certPEM), f[1], data)
		}
		return "ok"

	case "constitution":
		src := d.Input
		switch {
		case d.HasArg("default"):
			src = DefaultSource()
		case d.HasArg("veto"):
			src = VetoSource()
		case d.HasArg("file"):
			var file string
			d.ScanArgs(t, "file", &file)
			b, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			src = string(b)
		}
		c, err := Compile(src, Limits{})
		if err != nil {
			return "error: " + err.Error()
		}
		s.c = c
		return "ok"

	case "propose":
		d.ScanArgs(t, "proposer", &s.proposer)
		s.proposal, s.votes = s.expand(t, d.Input), nil
		v, err := s.c.Validate(ctx, s.proposal)
		switch {
		case err != nil:
			return "error: " + err.Error()
		case v.Valid:
			return "valid: " + v.Description
		}
		return "invalid: " + s.subst(t, v.Description)

	case "vote":
		if len(d.CmdArgs) != 2 {
			t.Fatalf("vote: want <name> yes|no|ballot")
		}
		v := scenarioVote{member: d.CmdArgs[0].Key}
		switch d.CmdArgs[1].Key {
		case "yes":
			v.vote = true
		case "no":
		case "ballot":
			b, err := CompileBallot(d.Input, Limits{})
			if err != nil {
				return "error: " + err.Error()
			}
			v.ballot = b
		default:
			t.Fatalf("vote: %q is not yes, no or ballot", d.CmdArgs[1].Key)
		}
		s.votes = slices.DeleteFunc(s.votes, func(o scenarioVote) bool { return o.member == v.member })
		s.votes = append(s.votes, v)
		return "ok"

	case "resolve":
		var out strings.Builder
		var votes []Vote
		for _, v := range s.votes {
			id := s.identity(t, v.member).id
			if v.ballot == nil {
				votes = append(votes, Vote{MemberID: id, Vote: v.vote})
				continue
			}
			b, err := v.ballot.Vote(ctx, s.kv, s.proposal, s.identity(t, s.proposer).id)
			if err != nil {
				fmt.Fprintf(&out, "ballot %s: %v (not counted)\n", v.member, s.subst(t, err.Error()))
				continue
			}
			fmt.Fprintf(&out, "ballot %s: %v\n", v.member, b)
			votes = append(votes, Vote{MemberID: id, Vote: b})
		}
		state, err := s.c.Resolve(ctx, s.kv, s.proposal, s.identity(t, s.proposer).id, votes)
		if err != nil {
			fmt.Fprintf(&out, "error: %v", s.subst(t, err.Error()))
		} else {
			out.WriteString(string(state))
		}
		return out.String()

	case "apply":
		id := "p1"
		d.MaybeScanArgs(t, "id", &id)
		s.kv.log = nil
		host := &recHost{}
		err := s.c.Apply(ctx, s.kv, host, s.proposal, id)
		lines := append(append([]string{}, s.kv.log...), host.log...)
		if err != nil {
			lines = append(lines, "error: "+err.Error())
		}
		if len(lines) == 0 {
			return "no writes"
		}
		return s.subst(t, strings.Join(lines, "\n"))

	case "show":
		table := "public:coco.gov." + d.CmdArgs[0].Key
		var lines []string
		s.kv.Range(table, func(k, v string) bool {
			lines = append(lines, k+" = "+v)
			return true
		})
		if len(lines) == 0 {
			return "empty"
		}
		return s.subst(t, strings.Join(lines, "\n"))
	}
	t.Fatalf("unknown command %q", d.Cmd)
	return ""
}

const membersTable = "public:coco.gov.members"

func (s *scenario) identity(t *testing.T, name string) identity {
	if !slices.Contains(s.names, name) {
		s.names = append(s.names, name)
	}
	return testIdentity(t, name)
}

var placeholder = regexp.MustCompile(`\{\{(cert|id|key) ([^}]+)\}\}`)

func (s *scenario) expand(t *testing.T, in string) string {
	return placeholder.ReplaceAllStringFunc(in, func(m string) string {
		p := placeholder.FindStringSubmatch(m)
		switch {
		case p[1] == "cert":
			return jsonString(s.identity(t, p[2]).certPEM)
		case p[1] == "id":
			return s.identity(t, p[2]).id
		case p[2] == "x25519":
			return jsonString(x25519PEM(t))
		case p[2] == "ed25519":
			return jsonString(ed25519PEM(t))
		}
		t.Fatalf("bad placeholder %s", m)
		return ""
	})
}

// subst replaces identities' ids and certificates, and the test keys, by
// their names.
func (s *scenario) subst(t *testing.T, out string) string {
	var pairs []string
	for _, name := range s.names {
		id := testIdentity(t, name)
		pairs = append(pairs, strings.Trim(jsonString(id.certPEM), `"`), "<cert "+name+">", id.id, "<"+name+">")
	}
	pairs = append(pairs, strings.Trim(jsonString(x25519PEM(t)), `"`), "<x25519 key>")
	return strings.NewReplacer(pairs...).Replace(out)
}
