package client_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/cocoledger/coco/client"
)

// A client for user0 of a sandbox started with `coco sandbox` in ./workspace.
func ExampleNew() {
	read := func(name string) []byte {
		b, err := os.ReadFile("workspace/" + name)
		if err != nil {
			log.Fatal(err)
		}
		return b
	}
	c, err := client.New(client.Config{
		Address:        "127.0.0.1:8000",
		ServiceCertPEM: read("service_cert.pem"),
		CertPEM:        read("user0_cert.pem"),
		KeyPEM:         read("user0_privk.pem"),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Ready(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// Write a private message, wait for it to commit, then fetch and verify its
// receipt.
func ExampleClient_LogWrite() {
	var c *client.Client              // from client.New
	var serviceCert *x509.Certificate // parsed from service_cert.pem
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tx, err := c.LogWrite(ctx, client.Private, 42, "hello", client.WriteOptions{RecordClaim: true})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.WaitCommitted(ctx, tx); err != nil {
		log.Fatal(err) // errors.Is(err, client.ErrInvalid): lost in an election; write again
	}
	r, err := c.Receipt(ctx, tx)
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Verify(serviceCert); err != nil {
		log.Fatal(err)
	}
	fmt.Println(tx, "is in the ledger")
}

// Telling a missing entry apart from other failures.
func ExampleClient_LogRead() {
	var c *client.Client // from client.New
	msg, err := c.LogRead(context.Background(), client.Public, 42)
	var apiErr *client.APIError
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("no message 42")
	case errors.As(err, &apiErr):
		fmt.Println("node refused:", apiErr.Status, apiErr.Code, apiErr.Message)
	case err != nil:
		fmt.Println("transport:", err)
	default:
		fmt.Println(msg)
	}
}
