package audit_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

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
