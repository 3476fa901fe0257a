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
func (s *Stack) startTemporal(ctx context.Context, b binaries, pt stackPorts) error {
	args := []string{
		"server", "start-dev",
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(pt.temporal),
		"--http-port", strconv.Itoa(pt.temporalHTTP),
		"--metrics-port", strconv.Itoa(pt.temporalMetrics),
		"--db-filename", filepath.Join(s.Dir, "temporal.db"),
		"--log-level", "warn",
	}
	// The "default" namespace is always created by start-dev; passing it again is not needed.
	for _, sa := range SearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	if s.opts.WebUI {
		args = append(args, "--ui-ip", "127.0.0.1", "--ui-port", strconv.Itoa(pt.temporalUI))
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
	if s.WebUI != "" {
		return waitFor(ctx, p, 100*time.Millisecond, func(ctx context.Context) error {
			return httpOK(ctx, s.WebUI+"/")
		})
	}
	return nil
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
