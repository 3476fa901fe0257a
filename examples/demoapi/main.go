// Command demoapi is the small payments API that rollbook's dev stack, demo, tests and
// benchmarks deploy: a reference for how a platform's API is built so that a rollback is
// invisible to its callers, writes included (docs/writes.md). HAProxy fronts it in two
// versions (stable and canary); both write to the same PostgreSQL database (the DSN comes
// from $DEMOAPI_DATABASE_URL, or -database-url).
//
//	POST /api/payments       create a payment; honours Idempotency-Key (below)
//	GET  /api/payments/{id}  one payment
//	GET  /api/payments       the latest payments (?limit=, at most 100)
//
// Writes with an Idempotency-Key header work like Stripe's API: the key, a hash of the
// request and the answer are stored in the shared database in the same transaction as the
// payment. A repeat of the key returns the stored answer (header Idempotent-Replayed: true)
// and never makes a second payment; a repeat with a different request is refused with 422.
// That is what makes a write safe to retry — for the client, and for HAProxy retrying it on
// the other server.
//
// v1 and v2 write differently: v1 keeps the caller's reference in payments.memo; v2 keeps it
// in payments.external_reference and books a ledger entry (ledger_entries), both added by
// the expand migrations. During a canary each runs on the schema the other expects: v1
// ignores the new column and table, and v2 falls back to v1's way when they do not exist
// (before the migrations ran, or after a rollback removed them).
//
// A version can also bring behaviour of its own, chosen when it is released like the rest:
// with -payment-events it records every payment it creates as a "created" row of
// payment_events, in the same transaction, when that table exists. The table comes with the
// next release's own migration (examples/demo/v3-release: 00005, which `make demo` deploys
// with v3); v1 and v2 never touch it, and a version with the flag writes like v2 where the
// table is missing, so each works on the schema before and after that migration.
//
// A version can misbehave from its start, so that a bad release is something real to detect:
// the flags -error-rate, -latency-ms and -write-failure (same meaning as below) are chosen
// when the instance is released. The dev stack's release command maps versions to them
// through the table in the worker's exec configuration (examples/dev-worker.yaml: v3 fails
// half of its reads and writes), so "v3 is bad" is a property of the release, not a toggle
// flipped on a running process.
//
// A running instance can also be told to misbehave (tests and benchmarks use this):
//
//	POST /admin/bad  {"errorRate":0.5,"latencyMs":300,"writeFailure":"after-commit"}
//	                 (or ?errorRate=0.5&latencyMs=300&writeFailure=after-commit)
//	POST /admin/good                                      back to normal
//	GET  /admin/state                                     the current mode
//
// In bad mode, requests to /api/... are delayed by latencyMs and a fraction errorRate of them
// answers 500. The failures are spread evenly (exactly errorRate of every run of requests,
// not random), which keeps tests and demos repeatable. writeFailure says where a failing
// write fails:
//
//   - "" (default): before the handler runs: nothing is stored;
//   - "before-commit": the payment is written, then the transaction is rolled back: nothing
//     is stored;
//   - "after-commit": the transaction commits, then the answer is a 500: the payment (and its
//     idempotency key) is stored, but the caller is told it failed — the hard case for
//     retries;
//   - "both": alternately before and after the commit.
//
// /healthz is never affected, so HAProxy keeps the server in rotation and only rollbook's
// verification can notice the bad release.
//
// Endpoints: GET /healthz, /api/payments..., /admin/*, GET /metrics (Prometheus).
// Every response carries the header X-Rollbook-Version.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	version := flag.String("version", "v1", "version this instance reports; v1 writes like v1, any other like v2")
	name := flag.String("name", "", "instance name reported in responses (e.g. stable, canary)")
	dsn := flag.String("database-url", os.Getenv("DEMOAPI_DATABASE_URL"), "PostgreSQL DSN (default $DEMOAPI_DATABASE_URL)")
	var m mode
	flag.Float64Var(&m.ErrorRate, "error-rate", 0, "fraction of /api requests that fail from the start (0 to 1): a bad version")
	flag.IntVar(&m.LatencyMs, "latency-ms", 0, "delay added to every /api request from the start, in milliseconds")
	flag.StringVar(&m.WriteFailure, "write-failure", "", `where a failing write fails: "", before-commit, after-commit, both`)
	events := flag.Bool("payment-events", false, "also record each payment created in payment_events, where that table exists (the next release's migration 00005)")
	flag.Parse()

	logger := log.New(os.Stderr, "demoapi: ", log.LstdFlags|log.Lmicroseconds)
	if *dsn == "" {
		logger.Fatal("no database: set DEMOAPI_DATABASE_URL or -database-url (a PostgreSQL DSN)")
	}
	m.Bad = m.ErrorRate > 0 || m.LatencyMs > 0
	if err := m.check(); err != nil {
		logger.Fatalf("flags: %v", err)
	}
	if err := run(*listen, *version, *name, *dsn, m, *events, logger); err != nil {
		logger.Fatal(err)
	}
}

func run(listen, version, name, dsn string, m mode, events bool, logger *log.Logger) error {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return errors.New("parsing the database URL: " + err.Error())
	}
	cfg.MaxConns = 32
	// The pool connects lazily: the API starts (and /healthz answers) even while the database
	// restarts; writes fail with 503 until it is back.
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	api := newServer(version, name, db)
	api.setMode(m)
	api.paymentEvents = events
	srv := &http.Server{
		Handler:           api.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Printf("version %s (%s) listening on http://%s (mode %+v, payment events %v)", version, name, ln.Addr(), m, events)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Printf("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
