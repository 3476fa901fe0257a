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

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

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

	// SIGTERM (systemd, Kubernetes) and Ctrl-C stop polling and let running
	// activities finish before exit.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := worker.Run(ctx, cfg, log); err != nil {
		log.Error("worker failed", zap.Error(err))
		os.Exit(1)
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
