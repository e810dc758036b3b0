package ids

import (
	"errors"
	"testing"
)

func TestParseTxIDRoundTrip(t *testing.T) {
	for _, s := range []string{"1.1", "2.15", "18446744073709551615.18446744073709551615"} {
		id, err := ParseTxID(s)
		if err != nil {
			t.Fatalf("ParseTxID(%q): %v", s, err)
		}
		if id.String() != s {
			t.Fatalf("round trip %q -> %q", s, id.String())
		}
	}
}

func TestParseTxIDRejects(t *testing.T) {
	for _, s := range []string{"", "1", "1.", ".1", "0.1", "1.0", "01.1", "1.01", "-1.1", "1.+1", " 1.1", "1.1 ", "1.1.1", "a.b", "18446744073709551616.1"} {
		if _, err := ParseTxID(s); !errors.Is(err, ErrBadTxID) {
			t.Errorf("ParseTxID(%q) = %v, want ErrBadTxID", s, err)
		}
	}
}

func FuzzParseTxID(f *testing.F) {
	for _, s := range []string{"1.1", "2.15", "0.0", "x", "1.1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseTxID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("accepted %q but formats as %q", s, id.String())
		}
	})
}
