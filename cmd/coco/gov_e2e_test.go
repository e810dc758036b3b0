package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoledger/coco/client"
	"github.com/cocoledger/coco/internal/ids"
)

// govJSON runs `coco gov ARGS --json` against the sandbox as member and
// decodes the answer.
func govJSON(t *testing.T, sb *runningSandbox, member string, stdin []byte, args ...string) (map[string]any, string, error) {
	t.Helper()
	full := append([]string{"gov"}, args...)
	full = append(full, "--workspace", sb.ws, "--json")
	if member != "" {
		full = append(full, "--member", member)
	}
	cmd := exec.Command(cocoBin, full...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var doc map[string]any
	if err == nil {
		if jerr := json.Unmarshal(out, &doc); jerr != nil {
			t.Fatalf("coco %v: not JSON: %v\n%s", full, jerr, out)
		}
	}
	return doc, string(out), err
}

// TestGovernanceCLI drives a 3-member sandbox through the CLI, as its
// members would: a set_user proposal is Open after one vote and Accepted
// after the second, the new user writes, and once removed it is refused.
// A user cannot propose; a request signed for another service, or sent
// twice, is refused with a clear error and changes nothing. A request
// signed by `coco gov sign` and posted as plain bytes (what curl
// --data-binary does) works like the CLI's own.
func TestGovernanceCLI(t *testing.T) {
	ws := t.TempDir()
	sb := startSandbox(t, ws, "--nodes", "3")
	ctx := context.Background()
	if out, err := coco(t, "keygen", "--name", "user1", "--out", ws); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	certPEM, err := os.ReadFile(filepath.Join(ws, "user1_cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	proposal, _ := json.Marshal(map[string]any{"actions": []any{map[string]any{"name": "set_user", "args": map[string]string{"cert": string(certPEM)}}}})

	doc, out, err := govJSON(t, sb, "member0", proposal, "propose", "-")
	if err != nil || doc["state"] != "Open" {
		t.Fatalf("propose: %v\n%s", err, out)
	}
	id := doc["proposal_id"].(string)
	if doc, out, err = govJSON(t, sb, "member0", nil, "vote", id, "--accept"); err != nil || doc["state"] != "Open" {
		t.Fatalf("first vote: %v\n%s", err, out)
	}
	user1 := userClient(t, sb, "user1")
	if _, err := user1.LogWrite(ctx, client.Private, 1, "too early", client.WriteOptions{}); !isStatus(err, http.StatusUnauthorized) {
		t.Fatalf("user1 wrote before the proposal passed: %v", err)
	}
	if doc, out, err = govJSON(t, sb, "member1", nil, "vote", id, "--accept"); err != nil || doc["state"] != "Accepted" {
		t.Fatalf("second vote: %v\n%s", err, out)
	}
	// Node 1 applies the new user once the vote's transaction commits.
	voteTx, err := client.ParseTxID(doc["transaction_id"].(string))
	if err != nil {
		t.Fatalf("the vote's transaction id: %v\n%s", err, out)
	}
	if err := sb.clientOf(1).WaitCommitted(ctx, voteTx); err != nil {
		t.Fatal(err)
	}
	if _, err := user1.LogWrite(ctx, client.Private, 1, "hello", client.WriteOptions{WaitCommit: true}); err != nil {
		t.Fatalf("user1 write after set_user: %v", err)
	}
	if doc, out, err = govJSON(t, sb, "", nil, "show", id); err != nil || doc["state"] != "Accepted" || doc["proposal"] == nil {
		t.Fatalf("show: %v\n%s", err, out)
	}

	// A user is not a member: it cannot propose or vote.
	_, out, err = govJSON(t, sb, "", proposal, "propose", "-", "--cert", filepath.Join(ws, "user0_cert.pem"), "--key", filepath.Join(ws, "user0_privk.pem"))
	if err == nil || !strings.Contains(out, "UnknownCaller") || !strings.Contains(out, "not a member") {
		t.Fatalf("a user proposed: %v\n%s", err, out)
	}

	// Remove user1 by a proposal signed with `coco gov sign` and posted as
	// bytes, the way curl --data-binary @req.cose does.
	rmUser, _ := json.Marshal(map[string]any{"actions": []any{map[string]any{"name": "remove_user", "args": map[string]string{"user_id": fingerprintPEM(t, certPEM)}}}})
	signed := signWithCLI(t, sb, "member2", "proposal", "", rmUser)
	status, body := postCose(t, sb, "/gov/proposals", signed)
	if status != http.StatusOK || !strings.Contains(body, `"state":"Open"`) {
		t.Fatalf("posting a signed proposal: %d %s", status, body)
	}
	// The same bytes again: a replay.
	if status, again := postCose(t, sb, "/gov/proposals", signed); status != http.StatusConflict || !strings.Contains(again, "ReplayedRequest") {
		t.Fatalf("replayed proposal: %d %s", status, again)
	}
	var p struct {
		ProposalID string `json:"proposal_id"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	rmID := p.ProposalID
	// A ballot signed for another service's certificate.
	other := filepath.Join(t.TempDir(), "other")
	if out, err := coco(t, "keygen", "--name", "svc", "--out", other); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	cmd := exec.Command(cocoBin, "gov", "sign", "--kind", "ballot", "--proposal", rmID, "--workspace", sb.ws, "--member", "member0",
		"--service-cert", filepath.Join(other, "svc_cert.pem"), "-")
	cmd.Stdin = strings.NewReader(`{"vote": true}`)
	foreign, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if status, body := postCose(t, sb, "/gov/proposals/"+rmID+"/ballots", foreign); status != http.StatusBadRequest || !strings.Contains(body, "WrongService") {
		t.Fatalf("a ballot for another service: %d %s", status, body)
	}
	if pr, err := sb.govClient(t).GovProposal(ctx, rmID); err != nil || pr.State != "Open" || len(pr.Ballots) != 0 {
		t.Fatalf("refused ballots changed the proposal: %+v, %v", pr, err)
	}
	for _, m := range []string{"member0", "member1"} {
		if doc, out, err = govJSON(t, sb, m, nil, "vote", rmID, "--accept"); err != nil {
			t.Fatalf("%s votes: %v\n%s", m, err, out)
		}
	}
	if voteTx, err = client.ParseTxID(doc["transaction_id"].(string)); err != nil {
		t.Fatal(err)
	}
	if err := sb.clientOf(1).WaitCommitted(ctx, voteTx); err != nil {
		t.Fatal(err)
	}
	if _, err := user1.LogRead(ctx, client.Private, 1); !isStatus(err, http.StatusUnauthorized) {
		t.Fatalf("removed user read: %v", err)
	}
	if _, err := sb.clientOf(1).LogRead(ctx, client.Private, 1); err != nil {
		t.Fatalf("user0 still reads: %v", err)
	}
	if out, err := coco(t, "gov", "list", "--workspace", ws); err != nil || strings.Count(out, "Accepted") != 5 {
		t.Fatalf("gov list: %v\n%s", err, out)
	}

	// The history in a ledger is what happened, and verifies offline: the
	// sandbox's 12 requests (3 acknowledgements; opening the service and
	// trusting two nodes, a proposal and two ballots each) and this test's
	// 6, not the refused ones.
	if err := sb.stop(); err != nil {
		t.Fatal(err)
	}
	out, err = coco(t, "ledger", "verify", sb.manifest.Nodes[1].LedgerDir, "--service-cert", sb.manifest.ServiceCert)
	if err != nil || !strings.Contains(out, "18 governance requests verified") || !strings.Contains(out, "attestation evidence of 3 nodes verified again") {
		t.Fatalf("ledger verify: %v\n%s", err, out)
	}
	out, err = coco(t, "ledger", "gov-history", sb.manifest.Nodes[1].LedgerDir, "--service-cert", sb.manifest.ServiceCert, "--json")
	if err != nil {
		t.Fatalf("gov-history: %v\n%s", err, out)
	}
	var hist struct {
		Events []struct {
			Kind       string          `json:"kind"`
			MemberID   string          `json:"member_id"`
			ProposalID string          `json:"proposal_id"`
			State      string          `json:"state"`
			Payload    json.RawMessage `json:"payload"`
		} `json:"events"`
		Verified int `json:"verified_requests"`
	}
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, e := range hist.Events {
		switch {
		case e.ProposalID == id || e.ProposalID == rmID:
			who := map[string]string{id: "set_user", rmID: "remove_user"}[e.ProposalID]
			if e.Kind != "" {
				mine = append(mine, who+" "+e.Kind+" "+memberName(t, ws, e.MemberID))
			} else {
				mine = append(mine, who+" "+e.State)
			}
		}
	}
	want := []string{
		"set_user proposal member0", "set_user Open", "set_user ballot member0", "set_user ballot member1", "set_user Accepted",
		"remove_user proposal member2", "remove_user Open", "remove_user ballot member0", "remove_user ballot member1", "remove_user Accepted",
	}
	if hist.Verified != 18 || strings.Join(mine, "; ") != strings.Join(want, "; ") {
		t.Fatalf("governance history: %d verified requests, events\n%s\nwant 18 and\n%s", hist.Verified, strings.Join(mine, "\n"), strings.Join(want, "\n"))
	}
}

// memberName names a member id by the workspace identity it belongs to.
func memberName(t *testing.T, ws, id string) string {
	t.Helper()
	for _, name := range []string{"member0", "member1", "member2"} {
		raw, err := os.ReadFile(filepath.Join(ws, name+"_cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if fingerprintPEM(t, raw) == id {
			return name
		}
	}
	return id
}

func isStatus(err error, status int) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.Status == status
}

func userClient(t *testing.T, sb *runningSandbox, name string) *client.Client {
	t.Helper()
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c, err := client.New(client.Config{Address: sb.manifest.Nodes[1].RPCAddress, ServiceCertPEM: read(sb.manifest.ServiceCert),
		CertPEM: read(filepath.Join(sb.ws, name+"_cert.pem")), KeyPEM: read(filepath.Join(sb.ws, name+"_privk.pem"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// govClient is an anonymous client of node 0 (governance reads are public).
func (sb *runningSandbox) govClient(t *testing.T) *client.Client {
	t.Helper()
	svc, err := os.ReadFile(sb.manifest.ServiceCert)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Address: sb.manifest.Nodes[0].RPCAddress, ServiceCertPEM: svc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func signWithCLI(t *testing.T, sb *runningSandbox, member, kind, proposal string, payload []byte) []byte {
	t.Helper()
	args := []string{"gov", "sign", "--kind", kind, "--workspace", sb.ws, "--member", member, "-"}
	if proposal != "" {
		args = append(args, "--proposal", proposal)
	}
	cmd := exec.Command(cocoBin, args...)
	cmd.Stdin = bytes.NewReader(payload)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("coco gov sign: %v\n%s", err, stderr.String())
	}
	return out
}

// postCose posts raw bytes as application/cose to node 2 (a backup
// forwards it), with nothing but the pinned service certificate: what
// curl --cacert service_cert.pem -H 'content-type: application/cose'
// --data-binary @req.cose does.
func postCose(t *testing.T, sb *runningSandbox, path string, body []byte) (int, string) {
	t.Helper()
	svc, err := os.ReadFile(sb.manifest.ServiceCert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(svc)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://"+sb.manifest.Nodes[2].RPCAddress+path, "application/cose", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func fingerprintPEM(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("not PEM")
	}
	return ids.Fingerprint(b.Bytes)
}
