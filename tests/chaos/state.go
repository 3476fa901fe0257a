package main

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/rollbook/rollbook/internal/devstack"
)

// The runbook's Consul keys and their baseline: config/version exists
// (value "1") so the rollback must restore a value; features/new-ledger does
// not exist so the rollback must delete it.
const keyPrefix = "rollbook-demo/payments-api/"

var (
	keyVersion = keyPrefix + "config/version"
	keyLedger  = keyPrefix + "features/new-ledger"
)

// Baseline and expected states. The stack configures HAProxy with stable at
// weight 256 and canary at 0; a rollback must put back exactly those raw
// weights, a success leaves rollbook's percentages 0/100.
var (
	baselineKeys  = map[string]string{keyVersion: "1"}
	succeededKeys = map[string]string{keyVersion: "2", keyLedger: "true"}
	baselineRaw   = rawWeights{Stable: 256, Canary: 0}
	// A success promotes: the new version on both targets, all traffic back on stable.
	succeededRaw = rawWeights{Stable: 100, Canary: 0}
)

// baselineVersion is what both release targets run at the start of every run: stable v1,
// the canary idle at the same version (weight 0).
const baselineVersion = "v1"

// servedVersions is what each target serves, as its own /healthz answers (X-Rollbook-Version).
type servedVersions struct {
	Stable string `json:"stable"`
	Canary string `json:"canary"`
}

func (v servedVersions) String() string { return v.Stable + " / " + v.Canary }

type rawWeights struct {
	Stable int `json:"stable"`
	Canary int `json:"canary"`
}

func (w rawWeights) String() string { return fmt.Sprintf("%d/%d", w.Stable, w.Canary) }

// liveState is what the invariants are checked against, read from the real
// components.
type liveState struct {
	SchemaVersion int64             `json:"schemaVersion"`
	LedgerTable   bool              `json:"ledgerTable"`
	ExternalRef   bool              `json:"externalReferenceColumn"`
	Memo          bool              `json:"memoColumn"`
	AccountIndex  bool              `json:"accountIndex"`
	Keys          map[string]string `json:"keys"`
	Weights       rawWeights        `json:"weights"`
	Versions      servedVersions    `json:"versions"`
}

type stateReader struct {
	stack *devstack.Stack
	db    *sql.DB
	kv    *consulapi.Client
}

func newStateReader(st *devstack.Stack) (*stateReader, error) {
	db, err := sql.Open("pgx", st.PGDSN)
	if err != nil {
		return nil, err
	}
	cfg := consulapi.DefaultConfig()
	cfg.Address = st.ConsulHTTPAddr
	kv, err := consulapi.NewClient(cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &stateReader{stack: st, db: db, kv: kv}, nil
}

func (r *stateReader) close() { r.db.Close() }

// reset puts the stack back to the baseline every run starts from: no
// ledger schema (goose version 0), config/version "1" and no other key of
// the runbook, HAProxy at stable 256 / canary 0 with both servers ready, a
// healthy canary.
func (r *stateReader) reset(ctx context.Context) error {
	// Each run checks its own acknowledged writes before the next reset empties the tables.
	if err := devstack.ResetDemoSchema(ctx, r.stack.PGDSN); err != nil {
		return err
	}
	if _, err := r.kv.KV().DeleteTree(keyPrefix, nil); err != nil {
		return fmt.Errorf("deleting %s: %w", keyPrefix, err)
	}
	for k, v := range baselineKeys {
		if _, err := r.kv.KV().Put(&consulapi.KVPair{Key: k, Value: []byte(v)}, nil); err != nil {
			return fmt.Errorf("writing %s: %w", k, err)
		}
	}
	b := devstack.Backend
	if _, err := r.stack.HAProxyCommand(fmt.Sprintf("set server %s/%s state ready; set server %s/%s state ready; set server %s/%s weight %d; set server %s/%s weight %d",
		b, devstack.StableServer, b, devstack.CanaryServer, b, devstack.StableServer, baselineRaw.Stable, b, devstack.CanaryServer, baselineRaw.Canary)); err != nil {
		return fmt.Errorf("resetting HAProxy: %w", err)
	}
	if err := r.resetReleases(ctx); err != nil {
		return err
	}
	return setCanaryBad(ctx, r.stack, 0)
}

// resetReleases puts baselineVersion on both targets through the stack's release supervisor
// (a no-op for a target already there) and waits until HAProxy has both servers UP.
func (r *stateReader) resetReleases(ctx context.Context) error {
	rc := devstack.NewReleaseClient(r.stack.Dir)
	for _, target := range []string{devstack.StableServer, devstack.CanaryServer} {
		if _, err := rc.Deploy(ctx, target, devstack.DeployRequest{Version: baselineVersion}); err != nil {
			return fmt.Errorf("putting %s on target %s: %w", baselineVersion, target, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, target := range []string{devstack.StableServer, devstack.CanaryServer} {
		for {
			st, err := rc.Health(ctx, target)
			if err == nil && st.Healthy {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("target %s not healthy at %s: %+v %v", target, baselineVersion, st, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// served reads the version a server answers with.
func served(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading the version of %s: %w", url, err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Rollbook-Version"), nil
}

func (r *stateReader) read(ctx context.Context) (liveState, error) {
	var s liveState
	var err error
	if s.SchemaVersion, err = r.schemaVersion(ctx); err != nil {
		return s, err
	}
	for _, q := range []struct {
		dst   *bool
		query string
		arg   []any
	}{
		{&s.LedgerTable, `SELECT to_regclass('public.ledger_entries') IS NOT NULL`, nil},
		{&s.ExternalRef, `SELECT count(*) = 1 FROM information_schema.columns WHERE table_name = 'payments' AND column_name = $1`, []any{"external_reference"}},
		{&s.Memo, `SELECT count(*) = 1 FROM information_schema.columns WHERE table_name = 'payments' AND column_name = $1`, []any{"memo"}},
		{&s.AccountIndex, `SELECT to_regclass('public.ledger_entries_account_id_idx') IS NOT NULL`, nil},
	} {
		if err := r.db.QueryRowContext(ctx, q.query, q.arg...).Scan(q.dst); err != nil {
			return s, fmt.Errorf("reading the schema: %w", err)
		}
	}
	pairs, _, err := r.kv.KV().List(keyPrefix, (&consulapi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return s, fmt.Errorf("listing %s: %w", keyPrefix, err)
	}
	s.Keys = map[string]string{}
	for _, p := range pairs {
		s.Keys[p.Key] = string(p.Value)
	}
	if s.Versions.Stable, err = served(ctx, r.stack.DemoStableURL); err != nil {
		return s, err
	}
	if s.Versions.Canary, err = served(ctx, r.stack.DemoCanaryURL); err != nil {
		return s, err
	}
	s.Weights, err = r.weights()
	return s, err
}

// schemaVersion reads goose's version table directly (0 when it does not
// exist), as goose itself reports it.
func (r *stateReader) schemaVersion(ctx context.Context) (int64, error) {
	var exists bool
	if err := r.db.QueryRowContext(ctx, `SELECT to_regclass('public.goose_db_version') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v sql.NullInt64
	if err := r.db.QueryRowContext(ctx, `SELECT max(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	return v.Int64, nil
}

// weights reads both servers' raw weights in one "show servers state", so
// the pair is one that existed.
func (r *stateReader) weights() (rawWeights, error) {
	out, err := r.stack.HAProxyCommand("show servers state " + devstack.Backend)
	if err != nil {
		return rawWeights{}, fmt.Errorf("reading HAProxy weights: %w", err)
	}
	w := rawWeights{Stable: -1, Canary: -1}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...
		if len(f) < 9 || f[1] != devstack.Backend {
			continue
		}
		n, err := strconv.Atoi(f[7])
		if err != nil {
			return w, fmt.Errorf("HAProxy weight of %s: %q", f[3], f[7])
		}
		switch f[3] {
		case devstack.StableServer:
			w.Stable = n
		case devstack.CanaryServer:
			w.Canary = n
		}
	}
	if w.Stable < 0 || w.Canary < 0 {
		return w, fmt.Errorf("HAProxy servers missing from %q", out)
	}
	return w, nil
}

// check is one invariant, evaluated against live state or the workflow
// result.
type check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	Want string `json:"want"`
	Got  string `json:"got"`
}

func eq[T comparable](name string, want, got T) check {
	return check{Name: name, OK: want == got, Want: fmt.Sprint(want), Got: fmt.Sprint(got)}
}

// stateChecks compares live state with what the outcome implies: a success
// leaves the contracted schema (version 4, payments.memo dropped), both keys,
// the deployed version on both targets (promoted) and all traffic back on
// stable; a rollback or an abort leaves exactly the baseline (version 0:
// payments.memo, no external_reference; baselineVersion on both targets).
func stateChecks(s liveState, succeeded bool, deployed string) []check {
	wantVersion, wantKeys, wantW := int64(0), baselineKeys, baselineRaw
	wantServed := servedVersions{Stable: baselineVersion, Canary: baselineVersion}
	if succeeded {
		wantVersion, wantKeys, wantW = 4, succeededKeys, succeededRaw
		wantServed = servedVersions{Stable: deployed, Canary: deployed}
	}
	cs := []check{
		eq("schema version", wantVersion, s.SchemaVersion),
		eq("table ledger_entries exists", succeeded, s.LedgerTable),
		eq("column payments.external_reference exists", succeeded, s.ExternalRef),
		eq("column payments.memo exists", !succeeded, s.Memo),
		eq("index ledger_entries_account_id_idx exists", succeeded, s.AccountIndex),
		eq("HAProxy raw weights stable/canary", wantW.String(), s.Weights.String()),
		eq("versions served by stable / canary", wantServed.String(), s.Versions.String()),
	}
	// Every key of the runbook, and any other key under its prefix.
	keys := map[string]bool{keyVersion: true, keyLedger: true}
	for k := range s.Keys {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		want, wok := wantKeys[k]
		got, gok := s.Keys[k]
		cs = append(cs, eq("consul "+strings.TrimPrefix(k, keyPrefix), kvString(want, wok), kvString(got, gok)))
	}
	return cs
}

func kvString(v string, ok bool) string {
	if !ok {
		return "(absent)"
	}
	return strconv.Quote(v)
}

// setCanaryBad makes the canary demo API fail that share of /api requests
// (0: healthy again).
func setCanaryBad(ctx context.Context, st *devstack.Stack, errorRate float64) error {
	u := st.DemoCanaryURL + "/admin/good"
	if errorRate > 0 {
		u = fmt.Sprintf("%s/admin/bad?errorRate=%g", st.DemoCanaryURL, errorRate)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("demo admin %s: %w", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("demo admin %s: %s", u, resp.Status)
	}
	return nil
}
