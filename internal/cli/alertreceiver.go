package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rollbook/rollbook/runbook"
)

// Where the alert receiver's bearer token comes from: never a flag, which
// every user of the machine can read in the process list.
const (
	envAlertReceiverToken     = "ROLLBOOK_ALERT_RECEIVER_TOKEN"
	envAlertReceiverTokenFile = "ROLLBOOK_ALERT_RECEIVER_TOKEN_FILE"
)

func (a *app) alertReceiverCommand() *cobra.Command {
	var listen, tokenFile, label string
	cmd := &cobra.Command{
		Use:   "alert-receiver",
		Short: "Abort deployments when Alertmanager reports a firing alert for their service",
		Long: `Serve Alertmanager's webhook (POST /alerts, payload version 4). Each firing
alert with a service label (--service-label) sends the abort signal to the
running deployment of that service (workflow rollbook-<service>), with the
alert's name and summary annotation as the reason and "alertmanager" as the
sender; the deployment rolls back and ends "aborted" (deploy --wait: exit 3).

Resolved alerts, alerts without the label, repeats of an alert already sent
to the same run and alerts for services with no running deployment change
nothing; they are logged and answered 200 so that Alertmanager does not retry.
Only an unreachable Temporal is answered 503 (Alertmanager retries).

A bearer token ("Authorization: Bearer <token>", Alertmanager's
http_config.authorization.credentials_file) is read from the file
--token-file (or ROLLBOOK_ALERT_RECEIVER_TOKEN_FILE) names, or from
ROLLBOOK_ALERT_RECEIVER_TOKEN; never from the command line. Anyone who can
reach the receiver can abort deployments: without a token it only listens on
a loopback address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := runbook.CheckName("--service-label", label); err != nil {
				return exitf(ExitBadInput, "%v", err)
			}
			token, err := secretFromEnv("alert receiver token", tokenFile, envAlertReceiverTokenFile, envAlertReceiverToken)
			if err != nil {
				return exitf(ExitBadInput, "%v", err)
			}
			return a.alertReceiver(cmd.Context(), listen, token, label)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9095", "address to listen on (without a token: loopback only)")
	cmd.Flags().StringVar(&tokenFile, "token-file", os.Getenv(envAlertReceiverTokenFile), "file holding the bearer token required on /alerts (env "+envAlertReceiverTokenFile+"; or the token itself in "+envAlertReceiverToken+")")
	cmd.Flags().StringVar(&label, "service-label", envOr("ROLLBOOK_ALERT_SERVICE_LABEL", "service"), "the alert label naming the service whose deployment to abort (env ROLLBOOK_ALERT_SERVICE_LABEL)")
	return cmd
}

// secretFromEnv reads a token from file, else from the environment
// variable env; fileEnv only names the file's variable in messages.
func secretFromEnv(what, file, fileEnv, env string) (string, error) {
	val := os.Getenv(env)
	if file == "" {
		return strings.TrimSpace(val), nil
	}
	if val != "" {
		return "", fmt.Errorf("%s: set either --token-file (%s) or %s, not both", what, fileEnv, env)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s: %s is empty", what, file)
	}
	return tok, nil
}

// listenGuarded listens on addr, refusing an address beyond loopback when
// there is no token.
func listenGuarded(addr, token, what string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if token != "" {
		return ln, nil
	}
	// The listener's own address: ":9095" and "0.0.0.0:9095" are every
	// interface, "localhost:9095" whatever it resolved to.
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		_ = ln.Close()
		return nil, fmt.Errorf("%s: refusing to listen on %s without a token: anyone who reaches it could abort deployments; set %s or --token-file, or listen on 127.0.0.1",
			what, ln.Addr(), envAlertReceiverToken)
	}
	return ln, nil
}

func (a *app) alertReceiver(ctx context.Context, listen, token, label string) error {
	ln, err := listenGuarded(listen, token, "alert receiver")
	if err != nil {
		return exitf(ExitBadInput, "%v", err)
	}
	defer ln.Close()
	// Structured logs on stderr, like the worker's: every notification and
	// what was done with it.
	a.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(a.errOut), zap.InfoLevel))
	defer func() { _ = a.logger.Sync() }()
	c, _, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	auth := "none (loopback only)"
	if token != "" {
		auth = "bearer token"
	}
	recv := newAlertReceiver(c, token, label, a.logger.Named("alert-receiver"))
	srv := &http.Server{
		Handler:           recv.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(a.out, "alert receiver listening on http://%s/alerts (service label %q, auth: %s)\n", ln.Addr(), label, auth)

	return serveUntilSignal(ctx, srv, ln, "alert receiver")
}
