package main

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/internal/audit"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/vfs"
)

func newLedgerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ledger", Short: "Inspect ledger files offline"}
	var certFile string
	var asJSON bool
	serviceCert := func() (*x509.Certificate, error) {
		if certFile == "" {
			return nil, nil
		}
		raw, err := os.ReadFile(certFile)
		if err != nil {
			return nil, err
		}
		return crypto.ParseCertPEM(raw)
	}
	trust := func() string {
		if certFile == "" {
			return "service certificate taken from the genesis transaction (pass --service-cert to pin it)"
		}
		return "service certificate given with --service-cert"
	}
	verify := &cobra.Command{
		Use:   "verify DIR [--service-cert FILE]",
		Short: "Audit a ledger: entries, Merkle roots, signatures and every governance request; prints the last signed TxID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := serviceCert()
			if err != nil {
				return err
			}
			rep, err := audit.Verify(vfs.OS(), args[0], svc)
			if err != nil {
				return err
			}
			cmd.Printf("ledger OK: %d entries, %d signatures, last signed transaction %s, %d entries after it not yet signed\n",
				rep.Entries, rep.Signatures, rep.LastSigned, rep.Unsigned)
			cmd.Printf("%d governance requests verified against the members of their time; attestation evidence of %d nodes verified again\n%s\n",
				rep.GovRequests, rep.NodeEvidence, trust())
			return nil
		},
	}
	history := &cobra.Command{
		Use:   "gov-history DIR [--service-cert FILE] [--json]",
		Short: "Audit a ledger and print its governance history: every signed request and every proposal state, in order",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := serviceCert()
			if err != nil {
				return err
			}
			events, rep, err := audit.GovHistory(vfs.OS(), args[0], svc)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd, map[string]any{"events": historyJSON(events), "verified_requests": rep.GovRequests})
			}
			for _, e := range events {
				cmd.Println(e.String())
			}
			cmd.Printf("%d governance requests, each verified against the members of its time; %s\n", rep.GovRequests, trust())
			return nil
		},
	}
	for _, c := range []*cobra.Command{verify, history} {
		c.Flags().StringVar(&certFile, "service-cert", "", "service certificate PEM to verify against")
	}
	history.Flags().BoolVar(&asJSON, "json", false, "print the history as JSON")
	cmd.AddCommand(verify, history)
	return cmd
}

// historyEvent is a governance event as gov-history --json prints it.
type historyEvent struct {
	TransactionID string          `json:"transaction_id"`
	Kind          string          `json:"kind,omitempty"`
	MemberID      string          `json:"member_id,omitempty"`
	CreatedAt     string          `json:"created_at,omitempty"`
	ProposalID    string          `json:"proposal_id,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	State         string          `json:"state,omitempty"`
	Failure       string          `json:"failure,omitempty"`
}

func historyJSON(events []audit.GovEvent) []historyEvent {
	out := make([]historyEvent, 0, len(events))
	for _, e := range events {
		h := historyEvent{TransactionID: e.TxID.String(), ProposalID: e.ProposalID, State: e.State, Failure: e.Failure}
		if r := e.Request; r != nil {
			h.Kind, h.MemberID = string(r.Kind), string(r.MemberID)
			h.CreatedAt = r.CreatedAt.UTC().Format(time.RFC3339)
			if json.Valid(r.Payload) {
				h.Payload = r.Payload
			}
		}
		out = append(out, h)
	}
	return out
}
