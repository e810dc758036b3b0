package audit_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cocoledger/coco/internal/attest"
	"github.com/cocoledger/coco/internal/audit"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/gov"
	"github.com/cocoledger/coco/internal/gov/signedreq"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
	"github.com/cocoledger/coco/internal/ledger"
)

type member struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	id   string
}

func newMember(t *testing.T, name string) member {
	t.Helper()
	key, _ := crypto.GenerateKey(nil)
	cert, err := crypto.SelfSign(nil, key, crypto.CertOptions{CommonName: name, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	return member{key: key, cert: cert, id: ids.Fingerprint(cert.Raw)}
}

func (w *writer) setMember(m member) {
	w.t.Helper()
	v, _ := json.Marshal(gov.Member{Cert: string(crypto.CertPEM(m.cert)), Status: gov.MemberActive})
	w.tx(gov.MembersTable, m.id, string(v))
}

func (w *writer) removeMember(m member) {
	w.t.Helper()
	store := kv.NewStore()
	tx := store.Begin()
	tx.Delete(gov.MembersTable, []byte(m.id))
	w.append(&ledger.Entry{Kind: ledger.KindTx, Public: tx.WriteSet().AppendBinary(nil)})
}

// request stores a signed request as the service does.
func (w *writer) request(t *testing.T, svc identity, signer member, at time.Time, payload string) *signedreq.Request {
	t.Helper()
	raw, err := signedreq.Sign(nil, signer.key, signer.cert, signedreq.Request{Kind: signedreq.KindProposal,
		CreatedAt: at, ServiceDigest: sha256.Sum256(svc.cert.Raw), Payload: []byte(payload)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := signedreq.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	k := r.ReplayKey()
	w.tx(gov.RequestsTable, string(k[:8]), string(raw))
	return r
}

// TestGovernanceRequestsVerifyAgainstTheirMembers: every stored signed
// request is verified against the members as of its transaction; a
// request of a member removed before it, of a non-member, or signed for
// another service fails the audit at its seqno.
func TestGovernanceRequestsVerifyAgainstTheirMembers(t *testing.T) {
	svc := newIdentity(t)
	m0, m1, stranger := newMember(t, "m0"), newMember(t, "m1"), newMember(t, "stranger")
	at := time.Unix(1_800_000_000, 0)
	good := func() *writer {
		w := newWriter(t)
		w.genesis(svc)
		w.setMember(m0)
		w.setMember(m1)
		w.request(t, svc, m0, at, `{"actions":[]}`)
		w.request(t, svc, m1, at.Add(time.Second), `{"actions":[{"name":"x"}]}`)
		return w
	}

	w := good()
	w.sign(svc, nil)
	w.close()
	events, rep, err := audit.GovHistory(w.fs, "/ledger", svc.cert)
	if err != nil {
		t.Fatal(err)
	}
	if rep.GovRequests != 2 || len(events) != 2 || events[0].Request.MemberID != ids.MemberID(m0.id) || events[1].Request.MemberID != ids.MemberID(m1.id) ||
		events[0].TxID.Seqno != 4 || !strings.Contains(events[1].String(), `{"actions":[{"name":"x"}]}`) {
		t.Fatalf("history %v, report %+v", events, rep)
	}

	for name, tc := range map[string]struct {
		build func(w *writer)
		want  string
	}{
		"removed member": {func(w *writer) { w.removeMember(m1); w.request(t, svc, m1, at.Add(2*time.Second), `{}`) }, "not a member at that point"},
		"never a member": {func(w *writer) { w.request(t, svc, stranger, at, `{}`) }, "not a member at that point"},
		"other service":  {func(w *writer) { w.request(t, newIdentity(t), m0, at.Add(3*time.Second), `{}`) }, "another service"},
	} {
		w := good()
		tc.build(w)
		w.close()
		_, err := audit.Verify(w.fs, "/ledger", svc.cert)
		var ae *audit.Error
		if !errors.As(err, &ae) || !errors.Is(err, audit.ErrAudit) || !strings.Contains(err.Error(), tc.want) || ae.Seqno != w.next-1 {
			t.Errorf("%s: %v; want an audit error at seqno %d saying %q", name, err, w.next-1, tc.want)
		}
	}
}

// TestNodeEvidenceIsVerifiedAgain: the audit verifies the attestation
// evidence recorded for each node, at the time it was verified, and that
// it binds the key of the node's certificate and the recorded measurement.
func TestNodeEvidenceIsVerifiedAgain(t *testing.T) {
	svc := newIdentity(t)
	code := strings.Repeat("cd", 32)
	plat, err := attest.NewVirtual(code)
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, _ := crypto.GenerateKey(nil)
	nodeCert, err := crypto.Endorse(nil, nodeKey.Public(), svc.key, svc.cert, crypto.CertOptions{CommonName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := crypto.GenerateKey(nil)
	evidenceFor := func(pub any) string {
		rd, err := attest.ReportDataForKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		b, err := plat.Evidence(rd)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(raw)
	}
	record := func(mod func(*gov.NodeInfo)) string {
		ni := gov.NodeInfo{Cert: string(crypto.CertPEM(nodeCert)), Status: gov.NodeTrusted, Platform: "virtual", Measurement: code,
			Evidence: evidenceFor(nodeKey.Public()), VerifiedAt: "2026-11-24T12:00:00Z"}
		if mod != nil {
			mod(&ni)
		}
		v, _ := json.Marshal(ni)
		return string(v)
	}
	nodeID := ids.Fingerprint(nodeCert.Raw)

	w := newWriter(t)
	w.genesis(svc)
	w.tx(gov.NodesTable, nodeID, record(nil))
	w.tx(gov.NodesTable, nodeID, record(func(ni *gov.NodeInfo) { ni.Status = gov.NodeRetired })) // same evidence: once
	w.sign(svc, nil)
	w.close()
	rep, err := audit.Verify(w.fs, "/ledger", svc.cert)
	if err != nil || rep.NodeEvidence != 1 {
		t.Fatalf("report %+v, %v; want 1 node's evidence verified", rep, err)
	}

	for name, tc := range map[string]struct {
		mod  func(*gov.NodeInfo)
		want string
	}{
		"another key":          {func(ni *gov.NodeInfo) { ni.Evidence = evidenceFor(otherKey.Public()) }, "does not bind the key of its certificate"},
		"not base64":           {func(ni *gov.NodeInfo) { ni.Evidence = "%%%" }, "not base64"},
		"not a bundle":         {func(ni *gov.NodeInfo) { ni.Evidence = base64.StdEncoding.EncodeToString([]byte("junk")) }, "bundle"},
		"other measurement":    {func(ni *gov.NodeInfo) { ni.Measurement = strings.Repeat("ef", 32) }, "its evidence says"},
		"no verification time": {func(ni *gov.NodeInfo) { ni.VerifiedAt = "" }, "verified_at"},
	} {
		w := newWriter(t)
		w.genesis(svc)
		w.tx(gov.NodesTable, nodeID, record(tc.mod))
		w.close()
		_, err := audit.Verify(w.fs, "/ledger", svc.cert)
		var ae *audit.Error
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.want) || ae.Seqno != 2 {
			t.Errorf("%s: %v; want an audit error at seqno 2 saying %q", name, err, tc.want)
		}
	}
}
