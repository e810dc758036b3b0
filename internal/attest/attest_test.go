package attest

import (
	"bytes"
	"errors"
	"testing"
)

func TestVirtualSealRoundTrip(t *testing.T) {
	p, err := New("virtual")
	if err != nil {
		t.Fatal(err)
	}
	if p.Secure() {
		t.Fatal("virtual platform claims to be secure")
	}
	secret := []byte{0, 1, 2, 255}
	blob, err := p.Seal(secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Unseal(blob)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unseal = %x, %v", got, err)
	}
	if _, err := p.Unseal(secret); !errors.Is(err, ErrSealedBlob) {
		t.Fatalf("Unseal(raw) = %v, want ErrSealedBlob", err)
	}
	if _, err := New("sgx"); !errors.Is(err, ErrUnknownPlatform) {
		t.Fatalf("New(sgx) = %v", err)
	}
}
