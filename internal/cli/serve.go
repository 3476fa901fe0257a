package cli

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// serveUntilSignal serves srv on ln until SIGINT or SIGTERM, then lets the
// requests in flight finish (5 s at most): the long-running subcommands
// (codec-server, alert-receiver) stop the same way under systemd or
// Kubernetes. what names the server in errors.
func serveUntilSignal(ctx context.Context, srv *http.Server, ln net.Listener, what string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return exitf(ExitBadInput, "%s: %v", what, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return exitf(ExitBadInput, "%s shutdown: %v", what, err)
	}
	return nil
}
