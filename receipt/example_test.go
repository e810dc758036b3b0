package receipt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/cocoledger/coco/receipt"
)

// Verifying a receipt fetched from GET /app/receipt against the pinned
// service certificate, as `coco receipt verify` does.
func ExampleReceipt_Verify() {
	raw, err := os.ReadFile("receipt.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := receipt.ParseJSON(raw)
	if err != nil {
		fmt.Println(err) // e.g. receipt: malformed: leaf_components.claims_digest: ...
		return
	}
	certPEM, err := os.ReadFile("service_cert.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		fmt.Println("service_cert.pem holds no certificate")
		return
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		fmt.Println(err)
		return
	}
	switch err := r.Verify(cert); {
	case err == nil:
		fmt.Printf("transaction %s is in the ledger\n", r.TransactionID)
	case errors.Is(err, receipt.ErrKeyMismatch):
		fmt.Println("issued by another service:", err)
	default:
		fmt.Println("not a valid receipt:", err)
	}
}

// The whole life of a receipt in a one-transaction ledger, where the Merkle
// root is the transaction's leaf hash and the inclusion path is empty.
func Example() {
	// The service identity.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "service"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(der)

	// Transaction 1.1 and the signature transaction after it.
	leaf := receipt.LeafComponents{
		WriteSetDigest: [32]byte{0xaa},
		CommitEvidence: "ce:1.1:0000000000000000000000000000000000000000000000000000000000000001",
	}
	root := leaf.LeafHash() // a tree of one leaf
	signedRoot, err := receipt.SignRoot(rand.Reader, key, root)
	if err != nil {
		panic(err)
	}

	// GET /app/receipt?transaction_id=1.1: leaf 0 of a tree of size 1.
	cose, err := receipt.Attach(signedRoot, 1, 0, nil)
	if err != nil {
		panic(err)
	}
	body, _ := json.Marshal(receipt.New("1.1", leaf, cose))

	// The client.
	r, err := receipt.ParseJSON(body)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Verify(cert))
	r.LeafComponents.WriteSetDigest = "bb" + r.LeafComponents.WriteSetDigest[2:]
	fmt.Println(errors.Is(r.Verify(cert), receipt.ErrSignature))
	// Output:
	// <nil>
	// true
}
