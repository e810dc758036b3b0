package node

import (
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/ids"
	"github.com/cocoledger/coco/internal/ledger"
)

// RekeyForTest commits a transaction that brings in a new ledger secret,
// as governance's trigger_ledger_rekey does, on the primary.
func (n *Node) RekeyForTest() (ids.TxID, error) {
	tx := n.store.Begin()
	if err := n.writeRekey(tx); err != nil {
		return ids.TxID{}, err
	}
	return n.commitTx(tx, [32]byte{})
}

// LedgerSecretsForTest is the node's ledger secret history.
func (n *Node) LedgerSecretsForTest() *crypto.LedgerSecrets { return n.secrets }

// EntryForTest reads the durable ledger entry at seqno.
func (n *Node) EntryForTest(seqno ids.Seqno) (*ledger.Entry, error) {
	var out *ledger.Entry
	err := n.ledger.ReadRange(seqno, seqno, func(e *ledger.Entry, _ []byte) error { out = e; return nil })
	return out, err
}
