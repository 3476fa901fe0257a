package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rollbook/rollbook/internal/codec"
)

func (a *app) codecServerCommand() *cobra.Command {
	var (
		listen  string
		origins []string
		token   string
	)
	cmd := &cobra.Command{
		Use:   "codec-server",
		Short: "Decrypt rollbook payloads for the Temporal Web UI and CLI (remote codec server)",
		Long: `Serve Temporal's remote codec protocol (POST /decode and /encode) with the payload
keys of ROLLBOOK_CODEC_KEY_FILE or ROLLBOOK_CODEC_KEY, so that the Web UI (Settings →
Codec Server, or temporal server start-dev --ui-codec-endpoint) and
"temporal workflow show --codec-endpoint" show encrypted payloads in clear.

--origin allows the Web UI's origin to call it from a browser (CORS); --token
(or ROLLBOOK_CODEC_SERVER_TOKEN) requires "Authorization: Bearer <token>".
Anyone who can reach it can read every payload: keep it on 127.0.0.1 or behind
a token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.codecServer(cmd.Context(), listen, origins, token)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to listen on")
	cmd.Flags().StringSliceVar(&origins, "origin", splitList(os.Getenv("ROLLBOOK_CODEC_ORIGINS")), "Web UI origin allowed by CORS, e.g. http://localhost:8233 (repeatable; env ROLLBOOK_CODEC_ORIGINS)")
	cmd.Flags().StringVar(&token, "token", os.Getenv("ROLLBOOK_CODEC_SERVER_TOKEN"), "bearer token required on /encode and /decode (env ROLLBOOK_CODEC_SERVER_TOKEN)")
	return cmd
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
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return exitf(ExitBadInput, "codec server: %v", err)
	}
	auth := "none"
	if token != "" {
		auth = "bearer token"
	} else if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(a.errOut, "rollbook: warning: codec server on %s without --token: anyone who reaches it can decrypt payloads\n", ln.Addr())
	}
	srv := &http.Server{Handler: codec.NewHTTPHandler(c, codec.ServerOptions{Origins: origins, Token: token}), ReadHeaderTimeout: 10 * time.Second}
	allowed := strings.Join(origins, ", ")
	if allowed == "" {
		allowed = "none (no browser access)"
	}
	fmt.Fprintf(a.out, "codec server listening on http://%s (active key %s, origins: %s, auth: %s)\n",
		ln.Addr(), c.ActiveKeyID(), allowed, auth)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return exitf(ExitBadInput, "codec server: %v", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return exitf(ExitBadInput, "codec server shutdown: %v", err)
	}
	return nil
}
