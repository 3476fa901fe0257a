package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
)

// startTemporal runs `temporal server start-dev` with rollbook's search attributes and an
// SQLite file in the stack directory, and waits for the frontend (and the Web UI when asked).
//
// start-dev chooses the ports of its internal services (history, matching, worker and
// their membership ports) itself: it asks the kernel for a free port and releases it.
// The other components of this stack, starting at the same time, or another stack on the
// machine can bind one of them first, and the server then exits with "address already in
// use": startComponent starts it again, and a new server picks new internal ports.
func (s *Stack) startTemporal(ctx context.Context, b binaries, pt stackPorts) error {
	args := []string{
		"server", "start-dev",
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(pt.Temporal),
		"--http-port", strconv.Itoa(pt.TemporalHTTP),
		"--metrics-port", strconv.Itoa(pt.TemporalMetrics),
		"--db-filename", filepath.Join(s.Dir, "temporal.db"),
		// The dev server persists through one SQLite connection. SQLite's
		// defaults (rollback journal, synchronous=FULL) fsync several times
		// per commit, and every workflow step is a few commits: on a busy
		// disk a commit then takes hundreds of milliseconds, the history
		// service's call to matching times out ("Fail to process task ...
		// TransferWorkflowTask ... context deadline exceeded") and a
		// workflow task is lost until its 5 s sticky or 10 s start-to-close
		// timeout — a rollback that should take 150 ms takes 10–20 s. WAL
		// with synchronous=NORMAL fsyncs only at checkpoints and still keeps
		// every committed transaction across a crash or kill of the server
		// process (only an OS crash can lose the last ones), which is what
		// the stack's restart tests need.
		"--sqlite-pragma", "journal_mode=wal",
		"--sqlite-pragma", "synchronous=normal",
		"--log-level", "warn",
	}
	// The "default" namespace is always created by start-dev; passing it again is not needed.
	for _, sa := range SearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	if s.opts.WebUI {
		args = append(args, "--ui-ip", "127.0.0.1", "--ui-port", strconv.Itoa(pt.TemporalUI))
	} else {
		args = append(args, "--headless")
	}
	args = append(args, s.opts.TemporalArgs...)
	p, err := s.spawn(spawnSpec{name: "temporal", exe: b.temporal, args: args, dir: s.Dir})
	if err != nil {
		return err
	}
	if err := waitFor(ctx, p, 100*time.Millisecond, func(ctx context.Context) error {
		return temporalReady(ctx, s.TemporalAddress)
	}); err != nil {
		return err
	}
	if s.WebUI == "" {
		return nil
	}
	return waitFor(ctx, p, 100*time.Millisecond, func(ctx context.Context) error {
		return httpOK(ctx, s.WebUI+"/")
	})
}

var silentSDKLogger = sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))

// temporalReady checks the frontend's gRPC health and that the default namespace exists.
func temporalReady(ctx context.Context, addr string) error {
	if addr == "" {
		return errors.New("no address")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Namespace: Namespace, Logger: silentSDKLogger})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return err
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: Namespace}); err != nil {
		return fmt.Errorf("namespace %q: %w", Namespace, err)
	}
	return nil
}
