package crypto

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cocoledger/coco/internal/ids"
)

func secretN(t testing.TB, n byte) *LedgerSecret {
	t.Helper()
	s, err := LedgerSecretFromBytes(bytes.Repeat([]byte{n}, SecretSize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLedgerSecretsAgainstOracle drives a history through random adds and
// rollbacks and checks At against a plain list searched linearly.
func TestLedgerSecretsAgainstOracle(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		type epoch struct {
			from ids.Seqno
			n    byte
		}
		oracle := []epoch{{1, 0}}
		s := NewLedgerSecrets(secretN(t, 0))
		next := byte(1)
		for range 200 {
			last := oracle[len(oracle)-1].from
			switch rng.IntN(3) {
			case 0, 1: // a rekey at a later seqno
				from := last + 1 + ids.Seqno(rng.IntN(10))
				if err := s.Add(from, secretN(t, next)); err != nil {
					t.Fatal(err)
				}
				oracle = append(oracle, epoch{from, next})
				next++
			case 2: // a rollback to somewhere around the last rekey
				to := ids.Seqno(rng.IntN(int(last) + 5))
				s.Rollback(to)
				for len(oracle) > 1 && oracle[len(oracle)-1].from > to+1 {
					oracle = oracle[:len(oracle)-1]
				}
			}
			if s.Len() != len(oracle) {
				t.Fatalf("seed %d: %d secrets, oracle %d", seed, s.Len(), len(oracle))
			}
			for seqno := ids.Seqno(0); seqno <= oracle[len(oracle)-1].from+2; seqno++ {
				want := oracle[0].n
				for _, e := range oracle {
					if e.from <= seqno {
						want = e.n
					}
				}
				if !s.At(seqno).Equal(secretN(t, want)) {
					t.Fatalf("seed %d: At(%d) is not secret %d", seed, seqno, want)
				}
			}
		}
		// The encoding carries the history whole.
		enc := s.AppendBinary(nil)
		back, err := DecodeLedgerSecrets(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.AppendBinary(nil), enc) {
			t.Fatalf("seed %d: the history does not survive its encoding", seed)
		}
	}
}

func TestLedgerSecretsRefusals(t *testing.T) {
	s := NewLedgerSecrets(secretN(t, 0))
	if err := s.Add(10, secretN(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(10, secretN(t, 1)); err != nil {
		t.Fatalf("adding the same secret again: %v", err)
	}
	for _, c := range []struct {
		from ids.Seqno
		n    byte
	}{{10, 2}, {5, 2}, {1, 2}} {
		if err := s.Add(c.from, secretN(t, c.n)); !errors.Is(err, ErrSecrets) {
			t.Errorf("Add(%d, another secret): %v; want ErrSecrets", c.from, err)
		}
	}
	s.Rollback(0)
	if s.Len() != 1 || !s.At(100).Equal(secretN(t, 0)) {
		t.Fatal("a rollback before the first rekey must keep only the first secret")
	}

	good := s.AppendBinary(nil)
	two := NewLedgerSecrets(secretN(t, 0))
	if err := two.Add(3, secretN(t, 1)); err != nil {
		t.Fatal(err)
	}
	twoEnc := two.AppendBinary(nil)
	dup := append(append([]byte(nil), twoEnc...), twoEnc[5+40:]...) // the second secret twice
	dup[4] = 3
	notFirst := append([]byte(nil), good...)
	notFirst[12] = 2 // first secret from seqno 2
	for name, b := range map[string][]byte{
		"empty":         nil,
		"version 2":     append([]byte{2}, good[1:]...),
		"no secrets":    {1, 0, 0, 0, 0},
		"short":         good[:len(good)-1],
		"trailing":      append(append([]byte(nil), good...), 0),
		"first from 2":  notFirst,
		"repeated from": dup,
	} {
		if _, err := DecodeLedgerSecrets(b); !errors.Is(err, ErrSecrets) {
			t.Errorf("%s: %v; want ErrSecrets", name, err)
		}
	}
}

// FuzzDecodeLedgerSecrets: the decoder never panics, and what it accepts
// re-encodes to the same bytes.
func FuzzDecodeLedgerSecrets(f *testing.F) {
	one := NewLedgerSecrets(secretN(f, 1))
	f.Add(one.AppendBinary(nil))
	if err := one.Add(40, secretN(f, 2)); err != nil {
		f.Fatal(err)
	}
	f.Add(one.AppendBinary(nil))
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeLedgerSecrets(b)
		if err != nil {
			if !errors.Is(err, ErrSecrets) {
				t.Fatalf("error %v is not ErrSecrets", err)
			}
			return
		}
		if !bytes.Equal(s.AppendBinary(nil), b) {
			t.Fatal("accepted bytes do not re-encode to themselves")
		}
	})
}
