package crypto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cocoledger/coco/internal/ids"
)

// ErrSecrets reports a ledger secret history that does not fit together:
// secrets out of order, two different secrets for the same seqno, or an
// encoding that does not decode.
var ErrSecrets = errors.New("crypto: inconsistent ledger secret history")

// secretsVersion is the first byte of an encoded LedgerSecrets.
const secretsVersion = 1

// LedgerSecrets is the history of a service's ledger secrets: each one
// encrypts the entries from its first seqno until the next one takes
// over. A rekey adds a secret; old ones stay, so history still decrypts.
//
// Readers (At) never block: the history is an immutable slice swapped
// atomically. Writers (Add, Rollback) must be serialised by the caller
// (the node calls them in seqno order under its order lock).
type LedgerSecrets struct {
	list atomic.Pointer[[]epochSecret]
}

type epochSecret struct {
	from   ids.Seqno
	secret *LedgerSecret
}

// NewLedgerSecrets starts a history with the service's first secret, in
// effect from seqno 1.
func NewLedgerSecrets(first *LedgerSecret) *LedgerSecrets {
	s := &LedgerSecrets{}
	s.list.Store(&[]epochSecret{{from: 1, secret: first}})
	return s
}

// At returns the secret that encrypts the entry at seqno.
func (s *LedgerSecrets) At(seqno ids.Seqno) *LedgerSecret {
	list := *s.list.Load()
	for i := len(list) - 1; i > 0; i-- {
		if list[i].from <= seqno {
			return list[i].secret
		}
	}
	return list[0].secret
}

// Len returns how many secrets the history holds.
func (s *LedgerSecrets) Len() int { return len(*s.list.Load()) }

// Add records secret as the one in effect from seqno from. Adding the
// secret already recorded for from again does nothing (a node replaying
// its ledger meets the rekeys it unsealed); from must otherwise follow
// every recorded one.
func (s *LedgerSecrets) Add(from ids.Seqno, secret *LedgerSecret) error {
	list := *s.list.Load()
	for _, e := range list {
		if e.from == from {
			if e.secret.Equal(secret) {
				return nil
			}
			return fmt.Errorf("%w: another secret is already in effect from seqno %d", ErrSecrets, from)
		}
	}
	if last := list[len(list)-1].from; from <= last {
		return fmt.Errorf("%w: a secret from seqno %d cannot follow one from seqno %d", ErrSecrets, from, last)
	}
	next := append(list[:len(list):len(list)], epochSecret{from: from, secret: secret})
	s.list.Store(&next)
	return nil
}

// Rollback forgets the secrets brought in by entries after seqno to
// (those in effect from a seqno above to+1): the rekeys rolled back with
// them. The first secret is never forgotten.
func (s *LedgerSecrets) Rollback(to ids.Seqno) {
	list := *s.list.Load()
	n := len(list)
	for n > 1 && list[n-1].from > to+1 {
		n--
	}
	if n < len(list) {
		kept := list[:n:n]
		s.list.Store(&kept)
	}
}

// Through returns a copy of the history without the secrets brought in by
// entries after seqno to: what a joining node may be given when only the
// entries up to to are committed.
func (s *LedgerSecrets) Through(to ids.Seqno) *LedgerSecrets {
	c := &LedgerSecrets{}
	c.list.Store(s.list.Load())
	c.Rollback(to)
	return c
}

// AppendBinary appends the encoding of the history, for sealing and for a
// joining node:
//
//	+---------+-------------+------------------------+
//	| version | count       | from u64 ‖ secret [32] |  × count
//	| u8 = 1  | u32         |                        |
//	+---------+-------------+------------------------+
//
// integers big-endian, secrets in seqno order, the first from seqno 1.
func (s *LedgerSecrets) AppendBinary(b []byte) []byte {
	list := *s.list.Load()
	b = append(b, secretsVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(list)))
	for _, e := range list {
		b = binary.BigEndian.AppendUint64(b, uint64(e.from))
		b = append(b, e.secret.raw[:]...)
	}
	return b
}

// DecodeLedgerSecrets decodes what AppendBinary wrote, checking the
// history is well formed: version 1, at least one secret, the first from
// seqno 1, the others in increasing order, and nothing after the last.
func DecodeLedgerSecrets(b []byte) (*LedgerSecrets, error) {
	const head, item = 5, 8 + SecretSize
	if len(b) < head || b[0] != secretsVersion {
		return nil, fmt.Errorf("%w: not a version %d ledger secret history", ErrSecrets, secretsVersion)
	}
	count := binary.BigEndian.Uint32(b[1:head])
	rest := b[head:]
	if count == 0 || uint64(len(rest)) != uint64(count)*item {
		return nil, fmt.Errorf("%w: %d secrets in %d bytes", ErrSecrets, count, len(rest))
	}
	var (
		s    *LedgerSecrets
		prev ids.Seqno
	)
	for i := range int(count) {
		from := ids.Seqno(binary.BigEndian.Uint64(rest[i*item:]))
		secret, err := LedgerSecretFromBytes(rest[i*item+8 : (i+1)*item])
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if from != 1 {
				return nil, fmt.Errorf("%w: the first secret is in effect from seqno %d, not 1", ErrSecrets, from)
			}
			s, prev = NewLedgerSecrets(secret), 1
			continue
		}
		if from <= prev {
			return nil, fmt.Errorf("%w: a secret from seqno %d cannot follow one from seqno %d", ErrSecrets, from, prev)
		}
		if err := s.Add(from, secret); err != nil {
			return nil, err
		}
		prev = from
	}
	return s, nil
}
