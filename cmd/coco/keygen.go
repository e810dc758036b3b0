package main

import (
	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/internal/sandbox"
)

func newKeygenCmd() *cobra.Command {
	var name, out string
	cmd := &cobra.Command{
		Use:   "keygen --name NAME [--out DIR]",
		Short: "Create a P-256 key and self-signed certificate: NAME_cert.pem, NAME_privk.pem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			certPath, keyPath, err := sandbox.Keygen(out, name)
			if err != nil {
				return err
			}
			cmd.Printf("wrote %s and %s\n", certPath, keyPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "identity name (letters, digits, '-', '_')")
	cmd.Flags().StringVar(&out, "out", ".", "output directory")
	cmd.MarkFlagRequired("name")
	return cmd
}
