package signedreq_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/cocoledger/coco/internal/gov/signedreq"
	"github.com/cocoledger/coco/internal/ids"
)

// A member signs a ballot with the CLI; the node admits it once.
func ExampleChecker_Check() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "member0"}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	service := sha256.Sum256([]byte("the service certificate's DER"))
	proposal := "1f2e3d4c"
	now := time.Date(2027, 1, 15, 8, 0, 0, 0, time.UTC)

	// Member side.
	raw, err := signedreq.Sign(rand.Reader, key, cert, signedreq.Request{
		Kind:          signedreq.KindBallot,
		CreatedAt:     now,
		ServiceDigest: service,
		ProposalID:    proposal,
		Payload:       []byte(`{"vote": true}`),
	})
	if err != nil {
		panic(err)
	}

	// Node side, at POST /gov/proposals/1f2e3d4c/ballots.
	members := map[ids.MemberID]*x509.Certificate{ids.MemberID(ids.Fingerprint(cert.Raw)): cert}
	lookup := func(id ids.MemberID) (*x509.Certificate, bool) { c, ok := members[id]; return c, ok }
	checker := &signedreq.Checker{ServiceDigest: service, Window: 5 * time.Minute}

	req, err := checker.Check(now.Add(2*time.Second), raw, signedreq.KindBallot, proposal, lookup)
	fmt.Println(req.Kind, req.ProposalID, string(req.Payload), err)
	_, err = checker.Check(now.Add(3*time.Second), raw, signedreq.KindBallot, proposal, lookup)
	fmt.Println(errors.Is(err, signedreq.ErrReplayed))
	// Output:
	// ballot 1f2e3d4c {"vote": true} <nil>
	// true
}
