package main

import (
	"crypto/x509"
	"os"

	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/internal/audit"
	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/internal/vfs"
)

func newLedgerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ledger", Short: "Inspect ledger files offline"}
	var certFile string
	verify := &cobra.Command{
		Use:   "verify DIR [--service-cert FILE]",
		Short: "Audit a ledger: entries, Merkle roots and signatures; prints the last signed TxID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var svc *x509.Certificate
			if certFile != "" {
				raw, err := os.ReadFile(certFile)
				if err != nil {
					return err
				}
				c, err := crypto.ParseCertPEM(raw)
				if err != nil {
					return err
				}
				svc = c
			}
			rep, err := audit.Verify(vfs.OS(), args[0], svc)
			if err != nil {
				return err
			}
			trust := "service certificate given with --service-cert"
			if certFile == "" {
				trust = "service certificate taken from the genesis transaction (pass --service-cert to pin it)"
			}
			cmd.Printf("ledger OK: %d entries, %d signatures, last signed transaction %s, %d entries after it not yet signed\n%s\n",
				rep.Entries, rep.Signatures, rep.LastSigned, rep.Unsigned, trust)
			return nil
		},
	}
	verify.Flags().StringVar(&certFile, "service-cert", "", "service certificate PEM to verify against")
	cmd.AddCommand(verify)
	return cmd
}
