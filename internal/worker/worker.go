package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/internal/codec"
	"github.com/rollbook/rollbook/internal/faults"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/internal/router/consulsplit"
	"github.com/rollbook/rollbook/internal/router/haproxy"
	"github.com/rollbook/rollbook/internal/signing"
	"github.com/rollbook/rollbook/internal/temporalconn"
	"github.com/rollbook/rollbook/internal/tracing"
	"github.com/rollbook/rollbook/internal/workerconfig"
	"github.com/rollbook/rollbook/internal/zapadapter"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// Activities are the activity structs a worker registers, built from its
// configuration.
type Activities struct {
	Migrations *activities.Migrations
	KV         *activities.KV
	Traffic    *activities.Traffic
	Checks     *activities.Checks
	Notifier   *activities.Notifier
	Release    *activities.Release
	// Preflight checks a runbook's names, the live systems and the bundle
	// signature before the first change.
	Preflight *activities.Preflight
}

// BuildActivities resolves every configured name to a client. Secrets are
// read here and never logged.
func BuildActivities(cfg *Config) (*Activities, error) {
	targets := map[string]activities.DatabaseTarget{}
	for _, n := range slices.Sorted(maps.Keys(cfg.Databases)) {
		d := cfg.Databases[n]
		dsn, err := workerconfig.ResolveDSN(n, d)
		if err != nil {
			return nil, err
		}
		targets[n] = activities.DatabaseTarget{Dialect: d.Dialect, DSN: dsn}
	}
	mig, err := activities.NewMigrations(targets)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	if faults.Enabled() {
		// Only with ROLLBOOK_CRASHPOINT set (the crash campaign): stop
		// points between migration files and after an archive.
		mig.Hooks = activities.MigrationHooks{GooseOptions: faults.GooseOptions(), ArchiveDone: faults.ArchiveDone}
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
	for _, n := range slices.Sorted(maps.Keys(cfg.Routers)) {
		r := cfg.Routers[n]
		switch r.Driver {
		case "haproxy":
			addr := r.Address
			if r.AddressEnv != "" {
				if addr = os.Getenv(r.AddressEnv); addr == "" {
					return nil, fmt.Errorf("router %s: environment variable %s is empty", n, r.AddressEnv)
				}
			}
			h, err := haproxy.New(addr)
			if err != nil {
				return nil, fmt.Errorf("router %s: %w", n, err)
			}
			routers[n] = router.Scope(h, r.AllowedBackends)
		case "consul-splitter":
			s, err := consulsplit.New(consul, n)
			if err != nil {
				return nil, fmt.Errorf("router %s: %w", n, err)
			}
			routers[n] = router.Scope(s, r.AllowedBackends)
		}
	}
	tr, err := activities.NewTraffic(routers)
	if err != nil {
		return nil, fmt.Errorf("traffic: %w", err)
	}

	prom := map[string]string{}
	for _, n := range slices.Sorted(maps.Keys(cfg.Prometheus)) {
		u, err := workerconfig.ResolveAddress("prometheus "+n, cfg.Prometheus[n])
		if err != nil {
			return nil, err
		}
		prom[n] = u
	}
	endpoints := map[string]string{}
	for _, n := range slices.Sorted(maps.Keys(cfg.Endpoints)) {
		u, err := workerconfig.ResolveAddress("endpoint "+n, cfg.Endpoints[n])
		if err != nil {
			return nil, err
		}
		endpoints[n] = u
	}
	chk, err := activities.NewChecks(activities.ChecksConfig{Prometheus: prom, Routers: routers, Endpoints: endpoints, AllowedHosts: cfg.Checks.AllowedHosts})
	if err != nil {
		return nil, fmt.Errorf("checks: %w", err)
	}
	nt, err := buildNotifier(cfg)
	if err != nil {
		return nil, err
	}
	pf, err := buildPreflight(cfg, mig, kv, tr)
	if err != nil {
		return nil, err
	}
	rel, err := buildRelease(cfg)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if faults.Enabled() {
		// The crash campaign's stop point between a release's deploy and
		// its health wait (mid1:ApplyRelease, mid1:RestoreRelease).
		rel.DeployDone = faults.DeployDone
	}
	return &Activities{Migrations: mig, KV: kv, Traffic: tr, Checks: chk, Notifier: nt, Release: rel, Preflight: pf}, nil
}

// buildNotifier reads the webhooks' URLs and the paging services' routing
// keys (secrets: never logged) and builds the Notify activity.
func buildNotifier(cfg *Config) (*activities.Notifier, error) {
	nc := activities.NotifierConfig{Webhooks: map[string]string{}, Channels: map[string]string{}, Pagers: map[string]activities.PagerConfig{}, WebUI: cfg.WebUI}
	for _, n := range slices.Sorted(maps.Keys(cfg.Webhooks)) {
		w, err := workerconfig.ResolveWebhook(n, cfg.Webhooks[n])
		if err != nil {
			return nil, err
		}
		if w.Kind == workerconfig.WebhookKindJSON {
			nc.Webhooks[n] = w.URL
		} else {
			nc.Channels[n] = w.URL
		}
	}
	for _, n := range slices.Sorted(maps.Keys(cfg.Paging)) {
		p := cfg.Paging[n]
		key, err := workerconfig.ResolveRoutingKey(n, p)
		if err != nil {
			return nil, err
		}
		nc.Pagers[n] = activities.PagerConfig{RoutingKey: key, EventsURL: workerconfig.PagingEventsURL(p)}
	}
	return activities.NewNotifierFrom(nc)
}

// buildPreflight binds the names check to cfg, lends the preflight the
// other activities' clients and loads the trusted signing keys.
func buildPreflight(cfg *Config, mig *activities.Migrations, kv *activities.KV, tr *activities.Traffic) (*activities.Preflight, error) {
	pf := &activities.Preflight{
		Names:      func(rb *runbook.Runbook) []string { return CheckNames(cfg, rb) },
		Migrations: mig, KV: kv, Traffic: tr,
	}
	if s := cfg.Signing; s != nil {
		t, err := signing.LoadTrusted(s.TrustedKeys)
		if err != nil {
			return nil, fmt.Errorf("signing.trustedKeys: %w", err)
		}
		pf.Trusted, pf.RequireSignature = t, s.Require
	}
	return pf, nil
}

func keyFileOf(c *CodecConfig) string {
	if c == nil {
		return ""
	}
	return c.KeyFile
}

// Register adds the Deploy and Revert workflows and every activity to w.
func Register(w sdkworker.Registry, a *Activities) {
	w.RegisterWorkflowWithOptions(workflows.Deploy, workflows.RegisterOptions())
	w.RegisterWorkflowWithOptions(workflows.Revert, workflows.RevertRegisterOptions())
	for _, act := range a.byName() {
		w.RegisterActivityWithOptions(act.fn, activity.RegisterOptions{Name: act.name})
	}
}

type namedActivity struct {
	name string
	fn   any
}

// byName pairs every activity of the contract with its implementation. The
// workflows execute activities by these names, so registering each method
// under its contract name (rather than the struct, whose method names
// happen to match today) keeps a renamed method from silently breaking
// recorded histories. Release and Preflight are optional.
func (a *Activities) byName() []namedActivity {
	acts := []namedActivity{
		{contract.ActivityCaptureSchema, a.Migrations.CaptureSchema},
		{contract.ActivityMigrateUp, a.Migrations.MigrateUp},
		{contract.ActivityMigrateDown, a.Migrations.MigrateDown},
		{contract.ActivityCaptureKV, a.KV.CaptureKV},
		{contract.ActivityApplyKV, a.KV.ApplyKV},
		{contract.ActivityRestoreKV, a.KV.RestoreKV},
		{contract.ActivityCaptureWeights, a.Traffic.CaptureWeights},
		{contract.ActivitySetWeights, a.Traffic.SetWeights},
		{contract.ActivityRestoreWeights, a.Traffic.RestoreWeights},
		{contract.ActivityMeasure, a.Checks.Measure},
		{contract.ActivityWatch, a.Checks.WatchRouter},
		{contract.ActivityNotify, a.Notifier.Notify},
	}
	if a.Release != nil {
		acts = append(acts,
			namedActivity{contract.ActivityCaptureRelease, a.Release.CaptureRelease},
			namedActivity{contract.ActivityApplyRelease, a.Release.ApplyRelease},
			namedActivity{contract.ActivityRestoreRelease, a.Release.RestoreRelease})
	}
	if a.Preflight != nil {
		acts = append(acts, namedActivity{contract.ActivityPreflight, a.Preflight.Preflight})
	}
	return acts
}

// Options tune Start; the zero value runs a worker as Run does.
type Options struct {
	// MetricsListener, when set, serves /metrics and /healthz instead of
	// cfg.Metrics.Listen (tests pass a listener on a free port). Start owns
	// it from then on: Stop closes it.
	MetricsListener net.Listener
	// ClientOptions, when set, is applied last to the Temporal client
	// options (for example to point a worker at another server).
	ClientOptions func(*client.Options)
	// Activities replaces BuildActivities(cfg) when set.
	Activities *Activities
}

// Running is a started worker.
type Running struct {
	// Client is the worker's Temporal client (with the payload codec and
	// the metrics handler).
	Client client.Client
	// MetricsURL is http://host:port/metrics, or "" without a listener.
	MetricsURL string
	// Metrics is the registry /metrics serves.
	Metrics *Metrics

	w       sdkworker.Worker
	srv     *http.Server
	log     *zap.Logger
	stopped bool
}

// Start builds the activities, connects to Temporal (with the payload codec
// when configured, and the metrics handler), serves /metrics and starts
// polling cfg.TaskQueue. Stop undoes all of it.
func Start(ctx context.Context, cfg *Config, log *zap.Logger, o Options) (_ *Running, err error) {
	closeListener := func() {
		if o.MetricsListener != nil {
			_ = o.MetricsListener.Close()
		}
	}
	acts := o.Activities
	if acts == nil {
		if acts, err = BuildActivities(cfg); err != nil {
			closeListener()
			return nil, err
		}
	}
	var cdc *codec.Codec
	if cfg.Codec != nil {
		if cdc, err = codec.Load(codec.Source{KeyFile: cfg.Codec.KeyFile, KeyEnv: cfg.Codec.KeyEnv, KeyID: cfg.Codec.KeyID}); err != nil {
			closeListener()
			return nil, fmt.Errorf("codec: %w", err)
		}
		if cfg.Codec.RequireEncryption {
			cdc = cdc.RequireEncryption()
		}
	}
	for _, kf := range []string{keyFileOf(cfg.Codec), os.Getenv(codec.EnvKeyFile)} {
		if kf == "" {
			continue
		}
		if err := codec.CheckKeyFileMode(kf); errors.Is(err, codec.ErrKeyFileExposed) {
			log.Warn("payload key file is readable by other users", zap.Error(err))
		}
	}
	m, err := NewMetrics(log)
	if err != nil {
		closeListener()
		return nil, err
	}
	c, opts, err := temporalconn.Dial(ctx, zapadapter.New(log), 10*time.Second, func(co *client.Options) {
		if cdc != nil {
			// The configuration wins over ROLLBOOK_CODEC_KEY*.
			cdc.Apply(co)
		}
		co.MetricsHandler = m.Handler
		if o.ClientOptions != nil {
			o.ClientOptions(co)
		}
	})
	if err != nil {
		closeListener()
		return nil, err
	}
	r := &Running{Client: c, Metrics: m, log: log}
	defer func() {
		if err != nil {
			r.Stop()
		}
	}()

	if err = m.WatchPhases(c, opts.Namespace, log); err != nil {
		return nil, err
	}

	ln := o.MetricsListener
	if ln == nil && cfg.Metrics.Listen != "" {
		if ln, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			return nil, fmt.Errorf("metrics listener %s: %w", cfg.Metrics.Listen, err)
		}
	}
	if ln != nil {
		r.srv = serveMetrics(ln, m, log)
		r.MetricsURL = "http://" + ln.Addr().String() + "/metrics"
	}

	wopts := sdkworker.Options{WorkerStopTimeout: 20 * time.Second}
	if ic := faults.Interceptor(); ic != nil {
		// Only when ROLLBOOK_CRASHPOINT is set (the crash campaign).
		wopts.Interceptors = append(wopts.Interceptors, ic)
		p, _ := faults.Active()
		log.Warn("crash point armed: this worker stops at it and waits to be killed", zap.String("point", p.String()))
	}
	r.w = sdkworker.New(c, cfg.TaskQueue, wopts)
	Register(r.w, acts)
	if err := r.w.Start(); err != nil {
		r.w = nil
		return nil, fmt.Errorf("starting worker on task queue %s: %w", cfg.TaskQueue, err)
	}
	encryption := "off"
	if opts.DataConverter != nil {
		encryption = "on"
		if cdc != nil && cdc.RequiresEncryption() {
			encryption = "required"
		}
	}
	log.Info("rollbook worker started", zap.String("temporal", opts.HostPort), zap.String("namespace", opts.Namespace),
		zap.String("taskQueue", cfg.TaskQueue), zap.Strings("databases", slices.Sorted(maps.Keys(cfg.Databases))),
		zap.Strings("routers", slices.Sorted(maps.Keys(cfg.Routers))), zap.String("payloadEncryption", encryption), zap.Bool("tracing", tracing.Enabled()))
	return r, nil
}

// Stop stops polling (running activities get the stop timeout to finish),
// then the metrics server and the client. Stopping twice is a no-op.
func (r *Running) Stop() {
	if r.stopped {
		return
	}
	r.stopped = true
	if r.w != nil {
		r.w.Stop()
	}
	if r.srv != nil {
		_ = r.srv.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Metrics.Shutdown(ctx); err != nil {
		r.log.Warn("stopping metrics", zap.Error(err))
	}
	r.Client.Close()
}

// Run starts a worker (see Start) and runs it until ctx is done, then stops
// gracefully.
func Run(ctx context.Context, cfg *Config, log *zap.Logger) error {
	r, err := Start(ctx, cfg, log, Options{})
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("stopping worker")
	r.Stop()
	return nil
}
