package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rollbook/rollbook/internal/codec"
)

// Where the codec server's bearer token comes from: never a flag, which
// every user of the machine can read in the process list.
const (
	envCodecServerToken     = "ROLLBOOK_CODEC_SERVER_TOKEN"
	envCodecServerTokenFile = "ROLLBOOK_CODEC_SERVER_TOKEN_FILE"
)

func (a *app) codecServerCommand() *cobra.Command {
	var (
		listen    string
		origins   []string
		tokenFile string
	)
	cmd := &cobra.Command{
		Use:   "codec-server",
		Short: "Decrypt rollbook payloads for the Temporal Web UI and CLI (remote codec server)",
		Long: `Serve Temporal's remote codec protocol (POST /decode and /encode) with the payload
keys of ROLLBOOK_CODEC_KEY_FILE or ROLLBOOK_CODEC_KEY, so that the Web UI (Settings →
Codec Server, or temporal server start-dev --ui-codec-endpoint) and
"temporal workflow show --codec-endpoint" show encrypted payloads in clear.

--origin allows the Web UI's origin to call it from a browser (CORS). A bearer
token ("Authorization: Bearer <token>") is read from the file --token-file (or
ROLLBOOK_CODEC_SERVER_TOKEN_FILE) names, or from ROLLBOOK_CODEC_SERVER_TOKEN;
never from the command line. Anyone who can reach the server can read every
payload: without a token it only listens on a loopback address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := codecServerToken(tokenFile)
			if err != nil {
				return exitf(ExitBadInput, "%v", err)
			}
			return a.codecServer(cmd.Context(), listen, origins, token)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to listen on (without a token: loopback only)")
	cmd.Flags().StringSliceVar(&origins, "origin", splitList(os.Getenv("ROLLBOOK_CODEC_ORIGINS")), "Web UI origin allowed by CORS, e.g. http://localhost:8233 (repeatable; env ROLLBOOK_CODEC_ORIGINS)")
	cmd.Flags().StringVar(&tokenFile, "token-file", os.Getenv(envCodecServerTokenFile), "file holding the bearer token required on /encode and /decode (env "+envCodecServerTokenFile+"; or the token itself in "+envCodecServerToken+")")
	return cmd
}

// codecServerToken reads the token from file, else from the environment.
func codecServerToken(file string) (string, error) {
	env := os.Getenv(envCodecServerToken)
	if file == "" {
		return strings.TrimSpace(env), nil
	}
	if env != "" {
		return "", fmt.Errorf("codec server token: set either --token-file (%s) or %s, not both", envCodecServerTokenFile, envCodecServerToken)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("codec server token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("codec server token: %s is empty", file)
	}
	return tok, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (a *app) codecServer(ctx context.Context, listen string, origins []string, token string) error {
	c, err := codec.FromEnv()
	if err != nil {
		return exitf(ExitBadInput, "%v", err)
	}
	if c == nil {
		return exitf(ExitBadInput, "no payload keys: set %s (a file of ID:KEY lines) or %s", codec.EnvKeyFile, codec.EnvKey)
	}
	for _, o := range origins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return exitf(ExitBadInput, "--origin %q: want scheme://host[:port], e.g. http://localhost:8233", o)
		}
	}
	if kf := os.Getenv(codec.EnvKeyFile); kf != "" {
		if err := codec.CheckKeyFileMode(kf); errors.Is(err, codec.ErrKeyFileExposed) {
			fmt.Fprintf(a.errOut, "rollbook: warning: %v\n", err)
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return exitf(ExitBadInput, "codec server: %v", err)
	}
	auth := "none"
	if token != "" {
		auth = "bearer token"
	} else if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		// The listener's own address: ":8081" and "0.0.0.0:8081" are
		// every interface, "localhost:8081" whatever it resolved to.
		_ = ln.Close()
		return exitf(ExitBadInput, "codec server: refusing to listen on %s without a token: anyone who reaches it could decrypt every payload; set %s or --token-file, or listen on 127.0.0.1",
			ln.Addr(), envCodecServerToken)
	}
	srv := codec.NewServer(codec.NewHTTPHandler(c, codec.ServerOptions{Origins: origins, Token: token}))
	allowed := strings.Join(origins, ", ")
	if allowed == "" {
		allowed = "none (no browser access)"
	}
	fmt.Fprintf(a.out, "codec server listening on http://%s (active key %s, origins: %s, auth: %s)\n",
		ln.Addr(), c.ActiveKeyID(), allowed, auth)

	return serveUntilSignal(ctx, srv, ln, "codec server")
}
