package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/internal/crypto"
	"github.com/cocoledger/coco/receipt"
)

func newReceiptCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "receipt", Short: "Work with transaction receipts"}
	var receiptFile, certFile string
	verify := &cobra.Command{
		Use:   "verify --receipt FILE --service-cert FILE",
		Short: "Verify a receipt (the JSON of GET /app/receipt) against the service certificate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := os.ReadFile(receiptFile)
			if err != nil {
				return err
			}
			r, err := receipt.ParseJSON(raw)
			if err != nil {
				return err
			}
			certPEM, err := os.ReadFile(certFile)
			if err != nil {
				return err
			}
			cert, err := crypto.ParseCertPEM(certPEM)
			if err != nil {
				return err
			}
			if err := r.Verify(cert); err != nil {
				return err
			}
			cmd.Printf("receipt OK: transaction %s is in the ledger of the service %s\n", r.TransactionID, certFile)
			return nil
		},
	}
	verify.Flags().StringVar(&receiptFile, "receipt", "", "receipt JSON file")
	verify.Flags().StringVar(&certFile, "service-cert", "", "service certificate PEM")
	verify.MarkFlagRequired("receipt")
	verify.MarkFlagRequired("service-cert")
	cmd.AddCommand(verify)
	return cmd
}
