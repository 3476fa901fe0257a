package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rollbook/rollbook/internal/signing"
	"github.com/rollbook/rollbook/runbook"
)

// signBundle signs b with the key at keyFile, or at $ROLLBOOK_SIGNING_KEY_FILE
// when keyFile is empty; with neither the bundle goes unsigned (a worker
// that requires signatures then refuses it in its preflight).
func signBundle(b *runbook.Bundle, keyFile string) error {
	if keyFile == "" {
		keyFile = os.Getenv(signing.EnvKeyFile)
	}
	if keyFile == "" {
		return nil
	}
	priv, err := signing.LoadPrivateKey(keyFile)
	if err != nil {
		return exitf(ExitBadInput, "signing the bundle: %v; nothing was started", err)
	}
	if err := signing.Sign(b, priv); err != nil {
		return exitf(ExitBadInput, "signing the bundle: %v; nothing was started", err)
	}
	return nil
}

func signedBy(b *runbook.Bundle) string {
	if b.Signature == nil {
		return ""
	}
	return b.Signature.KeyID
}

func (a *app) keygenCommand() *cobra.Command {
	var pub string
	cmd := &cobra.Command{
		Use:   "keygen PRIVATE-KEY-FILE [--public FILE]",
		Short: "Write an Ed25519 key pair for signing bundles (private key mode 0600; never overwrites)",
		Long: `Write an Ed25519 key pair for signing deployment bundles.

CI keeps the private key secret and passes it to ` + "`rollbook deploy --sign-key FILE`" + ` (or
` + signing.EnvKeyFile + `); the worker's configuration lists the public key under
signing.trustedKeys, and with signing.require: true refuses unsigned or tampered bundles.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pub == "" {
				pub = args[0] + ".pub"
			}
			id, err := signing.GenerateKeyFiles(args[0], pub)
			if err != nil {
				return exitf(ExitBadInput, "%v", err)
			}
			fmt.Fprintf(a.out, "wrote private key %s and public key %s (key ID %s)\n", args[0], pub, id)
			return nil
		},
	}
	cmd.Flags().StringVar(&pub, "public", "", "public key file (default PRIVATE-KEY-FILE.pub)")
	return cmd
}
