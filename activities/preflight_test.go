package activities

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/internal/signing"
	"github.com/rollbook/rollbook/runbook"
)

func preflightBundle(t *testing.T) runbook.Bundle {
	t.Helper()
	rb := runbook.Runbook{APIVersion: runbook.APIVersion, Service: "pay",
		Routes: []runbook.Route{
			{Name: "ok", Router: "edge", Backend: "be", Subsets: []string{"stable", "canary"}, Stable: "stable", Canary: "canary"},
			{Name: "missing", Router: "gone", Backend: "nope", Subsets: []string{"a", "b"}, Stable: "a", Canary: "b"},
			{Name: "down", Router: "dead", Backend: "be", Subsets: []string{"a", "b"}, Stable: "a", Canary: "b"},
			{Name: "down-too", Router: "dead", Backend: "be2", Subsets: []string{"a", "b"}, Stable: "a", Canary: "b"},
		},
		Steps: []runbook.Step{
			{Name: "good-db", Migrate: &runbook.MigrateStep{Database: "good", Dir: "m"}},
			{Name: "bad-db", Migrate: &runbook.MigrateStep{Database: "down", Dir: "m"}},
			{Name: "again", Migrate: &runbook.MigrateStep{Database: "down", Dir: "m"}},
		}}
	b := runbook.Bundle{Runbook: rb, Version: "v1", StartedBy: runbook.Origin{User: "ci"}}
	h, err := b.ContentHash()
	require.NoError(t, err)
	b.Hash = h
	return b
}

func preflightUnderTest(t *testing.T) *Preflight {
	t.Helper()
	mig, err := NewMigrations(map[string]DatabaseTarget{
		"good": {Dialect: DialectSQLite, DSN: filepath.Join(t.TempDir(), "db.sqlite")},
		// Nothing listens on port 1: the ping is refused at once.
		"down": {Dialect: DialectPostgres, DSN: "postgres://rollbook@127.0.0.1:1/x?connect_timeout=2"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = mig.Close() })
	tr, err := NewTraffic(map[string]router.Router{
		"edge": &fakeRouter{raw: map[string]int{"stable": 100}},
		"gone": &fakeRouter{err: fmt.Errorf("backend %q: %w", "nope", router.ErrNotFound)},
		"dead": &fakeRouter{err: errors.New("dial unix /run/haproxy.sock: connection refused")},
	})
	require.NoError(t, err)
	return &Preflight{
		Names:      func(*runbook.Runbook) []string { return []string{`notify.webhook: unknown webhook "x"`} },
		Migrations: mig, Traffic: tr,
	}
}

// The preflight reports every problem at once: the names, a database that
// does not answer (once, though two steps use it), a backend the router does
// not have, a router that does not answer (once, though two routes use it).
func TestPreflightListsEveryProblem(t *testing.T) {
	p := preflightUnderTest(t)
	res, err := runActivity[PreflightResult](t, p, p.Preflight, PreflightInput{Bundle: preflightBundle(t)})
	require.NoError(t, err)
	require.Len(t, res.Problems, 4, "%q", res.Problems)
	assert.Equal(t, `notify.webhook: unknown webhook "x"`, res.Problems[0])
	assert.Contains(t, res.Problems[1], `steps[1].migrate.database: database "down" does not answer`)
	assert.NotContains(t, res.Problems[1], "rollbook", "the driver's error (user, host) stays in the worker's log")
	assert.Contains(t, res.Problems[2], `routes[1]: backend "nope" or one of its subsets (a, b) does not exist on router gone`)
	assert.Contains(t, res.Problems[3], `routes[2]: router dead does not answer for backend "be"`)
}

func TestPreflightSignature(t *testing.T) {
	dir := t.TempDir()
	privPath, pubPath := filepath.Join(dir, "k"), filepath.Join(dir, "k.pub")
	_, err := signing.GenerateKeyFiles(privPath, pubPath)
	require.NoError(t, err)
	priv, err := signing.LoadPrivateKey(privPath)
	require.NoError(t, err)
	trusted, err := signing.LoadTrusted([]string{pubPath})
	require.NoError(t, err)

	run := func(p *Preflight, b runbook.Bundle) PreflightResult {
		t.Helper()
		res, err := runActivity[PreflightResult](t, p, p.Preflight, PreflightInput{Bundle: b, SignatureOnly: true})
		require.NoError(t, err)
		return res
	}
	unsigned := preflightBundle(t)
	signed := preflightBundle(t)
	require.NoError(t, signing.Sign(&signed, priv))
	tampered := signed
	tampered.Version = "v2-evil"

	required := &Preflight{Trusted: trusted, RequireSignature: true}
	assert.Empty(t, run(required, signed).Problems)
	assert.Equal(t, signing.KeyID(priv.Public().(ed25519.PublicKey)), run(required, signed).SignedBy)
	assert.Contains(t, run(required, unsigned).Problems[0], "signature: this worker requires signed bundles")
	assert.Contains(t, run(required, tampered).Problems[0], "signature: bundle signature does not verify")

	// Without require, an unsigned bundle passes but a bad signature never does.
	optional := &Preflight{Trusted: trusted}
	assert.Empty(t, run(optional, unsigned).Problems)
	assert.Contains(t, run(optional, tampered).Problems[0], "does not verify")

	// Requiring signatures without keys refuses everything.
	assert.Contains(t, run(&Preflight{RequireSignature: true}, signed).Problems[0], "trusts no keys")
}
