// Command rollbook-worker polls Temporal for Deploy workflows and runs their
// activities. It only wires the process: flags, logger, signals. It lives in
// workers/rollbook-worker, not workers/, so that `go install` names the
// binary rollbook-worker.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rollbook/rollbook/internal/tracing"
	"github.com/rollbook/rollbook/internal/worker"
)

func main() {
	cfgPath := flag.String("config", envOr("ROLLBOOK_WORKER_CONFIG", "rollbook-worker.yaml"), "worker configuration file")
	flag.Parse()

	cfg, err := worker.LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rollbook-worker:", err)
		os.Exit(1)
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rollbook-worker:", err)
		os.Exit(1)
	}
	defer func() { _ = log.Sync() }()
	// Tracing is off unless OTEL_* variables turn it on (docs/operations.md).
	shutdownTracing, err := tracing.Setup(context.Background(), tracing.Options{ServiceName: "rollbook-worker"})
	if err != nil {
		log.Fatal("tracing configuration (OTEL_* variables)", zap.Error(err))
	}
	defer flushTracing(shutdownTracing, log)

	// SIGTERM (systemd, Kubernetes) and Ctrl-C stop polling and let running
	// activities finish before exit.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := worker.Run(ctx, cfg, log); err != nil {
		log.Error("worker failed", zap.Error(err))
		flushTracing(shutdownTracing, log)
		os.Exit(1)
	}
}

// flushTracing sends the spans still buffered before the process exits.
func flushTracing(shutdown func(context.Context) error, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("flushing traces", zap.Error(err))
	}
}

func newLogger(c worker.LogConfig) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	if c.Level != "" {
		lvl, err := zapcore.ParseLevel(c.Level)
		if err != nil {
			return nil, fmt.Errorf("log.level: %w", err)
		}
		zc.Level = zap.NewAtomicLevelAt(lvl)
	}
	return zc.Build()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
