package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/internal/router/consulsplit"
	"github.com/rollbook/rollbook/internal/router/haproxy"
	"github.com/rollbook/rollbook/internal/temporalconn"
	"github.com/rollbook/rollbook/internal/zapadapter"
	"github.com/rollbook/rollbook/workflows"
)

// Activities are the activity structs a worker registers, built from its
// configuration.
type Activities struct {
	Migrations *activities.Migrations
	KV         *activities.KV
	Traffic    *activities.Traffic
	Checks     *activities.Checks
}

// BuildActivities resolves every configured name to a client. Secrets are
// read here and never logged.
func BuildActivities(cfg *Config) (*Activities, error) {
	targets := map[string]activities.DatabaseTarget{}
	for _, n := range sortedKeys(cfg.Databases) {
		d := cfg.Databases[n]
		dsn, err := resolveDSN(n, d)
		if err != nil {
			return nil, err
		}
		targets[n] = activities.DatabaseTarget{Dialect: d.Dialect, DSN: dsn}
	}
	mig, err := activities.NewMigrations(targets)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}

	consul, err := consulapi.NewClient(consulapi.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("consul client (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN): %w", err)
	}
	kv, err := activities.NewKV(consul, cfg.Consul.AllowedPrefixes)
	if err != nil {
		return nil, fmt.Errorf("consul kv: %w", err)
	}

	routers := map[string]router.Router{}
	for _, n := range sortedKeys(cfg.Routers) {
		r := cfg.Routers[n]
		switch r.Driver {
		case "haproxy":
			addr := r.Address
			if r.AddressEnv != "" {
				if addr = lookupEnv(r.AddressEnv); addr == "" {
					return nil, fmt.Errorf("router %s: environment variable %s is empty", n, r.AddressEnv)
				}
			}
			h, err := haproxy.New(addr)
			if err != nil {
				return nil, fmt.Errorf("router %s: %w", n, err)
			}
			routers[n] = h
		case "consul-splitter":
			s, err := consulsplit.New(consul, n)
			if err != nil {
				return nil, fmt.Errorf("router %s: %w", n, err)
			}
			routers[n] = s
		}
	}
	tr, err := activities.NewTraffic(routers)
	if err != nil {
		return nil, fmt.Errorf("traffic: %w", err)
	}

	prom := map[string]string{}
	for _, n := range sortedKeys(cfg.Prometheus) {
		u, err := resolveAddress("prometheus "+n, cfg.Prometheus[n])
		if err != nil {
			return nil, err
		}
		prom[n] = u
	}
	endpoints := map[string]string{}
	for _, n := range sortedKeys(cfg.Endpoints) {
		u, err := resolveAddress("endpoint "+n, cfg.Endpoints[n])
		if err != nil {
			return nil, err
		}
		endpoints[n] = u
	}
	chk, err := activities.NewChecks(activities.ChecksConfig{Prometheus: prom, Routers: routers, Endpoints: endpoints})
	if err != nil {
		return nil, fmt.Errorf("checks: %w", err)
	}
	return &Activities{Migrations: mig, KV: kv, Traffic: tr, Checks: chk}, nil
}

// Register adds the Deploy workflow and every activity to w.
func Register(w sdkworker.Registry, a *Activities) {
	w.RegisterWorkflowWithOptions(workflows.Deploy, workflows.RegisterOptions())
	w.RegisterWorkflowWithOptions(workflows.Revert, workflows.RevertRegisterOptions())
	w.RegisterActivity(a.Migrations)
	w.RegisterActivity(a.KV)
	w.RegisterActivity(a.Traffic)
	w.RegisterActivity(a.Checks)
}

// Run connects to Temporal, starts polling and serves /metrics until ctx is
// done, then stops gracefully (in-flight activities get the worker's stop
// timeout to finish).
func Run(ctx context.Context, cfg *Config, log *zap.Logger) error {
	acts, err := BuildActivities(cfg)
	if err != nil {
		return err
	}
	c, opts, err := temporalconn.Dial(ctx, zapadapter.New(log), 10*time.Second, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	w := sdkworker.New(c, cfg.TaskQueue, sdkworker.Options{WorkerStopTimeout: 20 * time.Second})
	Register(w, acts)

	if cfg.Metrics.Listen != "" {
		srv, err := serveMetrics(cfg.Metrics.Listen, log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting worker on task queue %s: %w", cfg.TaskQueue, err)
	}
	log.Info("rollbook worker started", zap.String("temporal", opts.HostPort), zap.String("namespace", opts.Namespace),
		zap.String("taskQueue", cfg.TaskQueue), zap.Strings("databases", sortedKeys(cfg.Databases)),
		zap.Strings("routers", sortedKeys(cfg.Routers)))
	<-ctx.Done()
	log.Info("stopping worker")
	w.Stop()
	return nil
}

func serveMetrics(addr string, log *zap.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	log.Info("serving metrics", zap.String("addr", "http://"+strings.TrimPrefix(ln.Addr().String(), "http://")+"/metrics"))
	return srv, nil
}

// Client options helper for tests and tools that start a worker in-process.
var _ = client.Options{}
