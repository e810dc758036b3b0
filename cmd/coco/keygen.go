package main

import (
	"github.com/spf13/cobra"

	"github.com/cocoledger/coco/internal/sandbox"
)

func newKeygenCmd() *cobra.Command {
	var name, out string
	var encryption bool
	cmd := &cobra.Command{
		Use:   "keygen --name NAME [--out DIR] [--encryption-key]",
		Short: "Create a P-256 key and self-signed certificate: NAME_cert.pem, NAME_privk.pem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			certPath, keyPath, err := sandbox.Keygen(out, name)
			if err != nil {
				return err
			}
			cmd.Printf("wrote %s and %s\n", certPath, keyPath)
			if encryption {
				pub, priv, err := sandbox.KeygenEncryption(out, name)
				if err != nil {
					return err
				}
				cmd.Printf("wrote %s and %s (a member's encryption key: recovery shares are sealed to it)\n", pub, priv)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "identity name (letters, digits, '-', '_')")
	cmd.Flags().StringVar(&out, "out", ".", "output directory")
	cmd.Flags().BoolVar(&encryption, "encryption-key", false, "also create an X25519 encryption key pair: NAME_enc_pubk.pem, NAME_enc_privk.pem")
	cmd.MarkFlagRequired("name")
	return cmd
}
