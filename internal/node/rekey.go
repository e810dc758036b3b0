package node

import (
	"fmt"

	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/kv"
)

// LedgerRekeyTable carries a new ledger secret to every node. A
// transaction that writes nextSecretKey (governance's
// trigger_ledger_rekey) makes its value the secret of every entry after
// its own; the entries before keep theirs, so history still decrypts.
// The table is private, so the new secret travels encrypted under the one
// it replaces, and a node that can read the ledger from the start learns
// every secret in turn (docs/governance.md, "Ledger rekey").
const LedgerRekeyTable kv.MapName = "coco.internal.ledger_rekey"

var nextSecretKey = []byte("next")

// writeRekey draws a new ledger secret and writes it in tx: it takes over
// from the entry after tx's when tx commits.
func (n *Node) writeRekey(tx *kv.Tx) error {
	secret, err := crypto.NewLedgerSecret(n.rand)
	if err != nil {
		return err
	}
	tx.Put(LedgerRekeyTable, nextSecretKey, secret.Bytes())
	return tx.Err()
}

// rekeyIn returns the secret that the entry at seqno brings in, if its
// (private) write set has one.
func rekeyIn(seqno ids.Seqno, ws *kv.WriteSet) (*crypto.LedgerSecret, error) {
	for _, w := range ws.Writes(LedgerRekeyTable) {
		if string(w.Key) != string(nextSecretKey) || w.Deleted {
			continue
		}
		secret, err := crypto.LedgerSecretFromBytes(w.Value)
		if err != nil {
			return nil, fmt.Errorf("node: the rekey at seqno %d: %w", seqno, err)
		}
		return secret, nil
	}
	return nil, nil
}

// noteRekey records the secret that the entry at seqno brings in, if any.
// Called under orderMu for every entry the node applies, in seqno order;
// rollbackTo forgets it again.
func (n *Node) noteRekey(seqno ids.Seqno, ws *kv.WriteSet) error {
	secret, err := rekeyIn(seqno, ws)
	if err != nil || secret == nil {
		return err
	}
	if err := n.secrets.Add(seqno+1, secret); err != nil {
		return fmt.Errorf("node: the rekey at seqno %d: %w", seqno, err)
	}
	return nil
}
