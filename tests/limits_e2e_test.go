package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// limitsKVSteps is how many consul steps the limits runbook has: with the
// migration, two traffic steps and two verifies it makes runbook.MaxSteps.
const limitsKVSteps = runbook.MaxSteps - 5

// limitsRunbook writes a runbook at both size limits: runbook.MaxSteps
// steps, and a bundle within 4 KiB of runbook.MaxBundleBytes, most of it
// a seed-data migration (a real INSERT, so the database carries the
// bytes too). Every third consul step deletes a key that existed before
// and the others set keys, half of which existed, so the rollback has to
// restore values, recreate deleted keys and delete new ones.
//
// With extra > 0 the bundle is that many bytes over the limit instead.
func (f *fixture) limitsRunbook(t *testing.T, extra int) (path string, existing map[string]string) {
	t.Helper()
	existing = map[string]string{}
	var steps strings.Builder
	fmt.Fprintf(&steps, "  - name: expand-schema\n    migrate: {database: payments, dir: migrations}\n")
	for i := range limitsKVSteps {
		key := fmt.Sprintf("%sk%03d", f.prefix, i)
		switch {
		case i%3 == 0:
			existing[key] = fmt.Sprintf("old-%d", i)
			fmt.Fprintf(&steps, "  - name: kv-%03d\n    consul: {delete: [%q]}\n", i, key)
		case i%2 == 0:
			existing[key] = fmt.Sprintf("old-%d", i)
			fallthrough
		default:
			fmt.Fprintf(&steps, "  - name: kv-%03d\n    consul: {set: {%q: \"new-%d\"}}\n", i, key, i)
		}
	}
	steps.WriteString(`  - name: canary-50
    traffic: {route: api, weights: {stable: 50, canary: 50}}
  - name: verify-50
    verify:
      duration: 2s
      interval: 1s
      checks:
        - name: healthz
          http: {endpoint: edge, path: /healthz}
  - name: canary-100
    traffic: {route: api, weights: {stable: 0, canary: 100}}
  - name: verify-final
    verify:
      duration: 4s
      interval: 1s
      checks:
        - name: canary-errors
          router: {route: api, subset: canary, maxErrorRate: 0.05, minRequests: 3}
`)
	y := fmt.Sprintf("apiVersion: rollbook/v1\nservice: %s\nroutes:\n  - {name: api, router: edge, backend: payments_api, subsets: [stable, canary], stable: stable, canary: canary}\nsteps:\n%s",
		f.service, steps.String())
	path = filepath.Join(f.dir, f.service+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(y), 0o644))

	// Fill the seed migration until the bundle is just under the limit: the
	// JSON encoding of the rows is not their length (quotes are escaped), so
	// measure the real bundle and grow the file by what is missing.
	seed := filepath.Join(f.dir, "migrations", "00004_seed_reference.sql")
	rows := 0
	write := func() {
		var b strings.Builder
		b.WriteString("-- +goose Up\nCREATE TABLE limits_reference (id integer PRIMARY KEY, label text NOT NULL);\n")
		for r := range rows {
			if r%500 == 0 {
				if r > 0 {
					b.WriteString(";\n")
				}
				b.WriteString("INSERT INTO limits_reference (id, label) VALUES\n")
			} else {
				b.WriteString(",\n")
			}
			fmt.Fprintf(&b, "(%d, 'reference row %06d of the limits test, padded to a realistic width')", r, r)
		}
		if rows > 0 {
			b.WriteString(";\n")
		}
		b.WriteString("-- +goose Down\nDROP TABLE limits_reference;\n")
		require.NoError(t, os.WriteFile(seed, []byte(b.String()), 0o644))
	}
	size := func() int {
		b, err := runbook.BuildBundle(path, "v-limits", runbook.Origin{User: "e2e"})
		if err != nil {
			// BuildBundle refuses a bundle over the limit.
			require.ErrorIs(t, err, runbook.ErrTooLarge)
			return runbook.MaxBundleBytes + 1
		}
		data, err := json.Marshal(b)
		require.NoError(t, err)
		return len(data)
	}
	// The size per row grows slowly with the row number (wider ids), so
	// measure the slope just under the target and step from there.
	write()
	n0 := size()
	rows = 1000
	write()
	n1 := size()
	target := runbook.MaxBundleBytes - 2048 + extra
	rows = 950 * (target - n0) / (n1 - n0)
	write()
	na := size()
	rows += 500
	write()
	slope := float64(size()-na) / 500
	rows += int(float64(target-na)/slope) - 500
	write()
	n := size()
	t.Logf("bundle: %d bytes with %d seed rows", n, rows)
	if extra == 0 {
		require.True(t, n > runbook.MaxBundleBytes-4096 && n <= runbook.MaxBundleBytes, "bundle of %d bytes is not at the limit", n)
	} else {
		require.Greater(t, n, runbook.MaxBundleBytes, "bundle must be over the limit")
	}
	return path, existing
}

// TestE2ERunbookAtTheLimits deploys a runbook of runbook.MaxSteps steps in a
// bundle of almost runbook.MaxBundleBytes, then deploys it again with a bad
// canary so that the last step fails and all 99 earlier steps are undone.
// The rollback must restore every key exactly (values, existence), the
// schema and the weights, with no compensation skipped.
func TestE2ERunbookAtTheLimits(t *testing.T) {
	f := newFixture(t, "e2e-limits")
	path, existing := f.limitsRunbook(t, 0)

	b, err := runbook.BuildBundle(path, "v-limits", runbook.Origin{User: "e2e"})
	require.NoError(t, err)
	data, err := json.Marshal(b)
	require.NoError(t, err)
	require.Len(t, b.Runbook.Steps, runbook.MaxSteps)
	require.Greater(t, len(data), runbook.MaxBundleBytes-8192, "the bundle must be at the limit")
	require.LessOrEqual(t, len(data), runbook.MaxBundleBytes)
	t.Logf("bundle: %d steps, %d bytes (limit %d)", len(b.Runbook.Steps), len(data), runbook.MaxBundleBytes)

	reset := func() {
		_, err := consul.KV().DeleteTree(f.prefix, nil)
		require.NoError(t, err)
		for k, v := range existing {
			putKV(t, k, v)
		}
	}
	assertBaseline := func(when string) {
		t.Helper()
		for i := range limitsKVSteps {
			key := fmt.Sprintf("%sk%03d", f.prefix, i)
			v, ok := kv(t, key)
			want, existed := existing[key]
			assert.Equal(t, existed, ok, "%s: existence of %s", when, key)
			assert.Equal(t, want, v, "%s: value of %s", when, key)
		}
		assert.Zero(t, schemaVersion(t), "%s: schema version", when)
		assert.False(t, tableExists(t, "limits_reference"), "%s: the seed table is gone", when)
		assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t), "%s: weights", when)
	}

	// 1. Forward: all 100 steps succeed.
	reset()
	assertBaseline("before the first deployment")
	l := startLoad(t, 30)
	start := time.Now()
	out, code := cli(t, "deploy", path, "--version", "v-limits", "--wait", "--json")
	l.Stop()
	require.Equal(t, 0, code, out)
	t.Logf("forward: succeeded in %s", time.Since(start).Round(time.Millisecond))
	assert.EqualValues(t, 4, schemaVersion(t))
	var seeded int
	require.NoError(t, openDB(t).QueryRow(`SELECT count(*) FROM limits_reference`).Scan(&seeded))
	assert.Greater(t, seeded, 10000, "the seed migration inserted its rows")
	for i := range limitsKVSteps {
		key := fmt.Sprintf("%sk%03d", f.prefix, i)
		v, ok := kv(t, key)
		if i%3 == 0 {
			assert.False(t, ok, "%s deleted", key)
		} else {
			assert.Equal(t, fmt.Sprintf("new-%d", i), v, "%s set", key)
		}
	}
	assert.Equal(t, map[string]int{"stable": 0, "canary": 100}, weights(t))
	f.assertHistoryBounded(t)

	// 2. Back to the baseline, then a bad canary fails the last step: every
	// one of the 99 applied steps is compensated.
	f.resetAfterSuccess(t)
	reset()
	assertBaseline("before the second deployment")
	setCanaryBad(t, 1)
	defer setCanaryBad(t, 0)
	l = startLoad(t, 30)
	start = time.Now()
	out, code = cli(t, "deploy", path, "--version", "v-limits-bad", "--wait", "--json")
	l.Stop()
	require.Equal(t, 2, code, out)
	t.Logf("rollback path: rolled back in %s", time.Since(start).Round(time.Millisecond))

	var res workflows.Result
	require.NoError(t, tclient.GetWorkflow(context.Background(), workflows.WorkflowID(f.service), "").Get(context.Background(), &res))
	assert.Equal(t, workflows.OutcomeRolledBack, res.Outcome)
	assert.Equal(t, "verify-final", res.FailedStep)
	// One record per mutating step (the migration, the consul steps, the
	// two traffic steps; the second traffic undo merges the first's write).
	assert.Len(t, res.Compensations, 1+limitsKVSteps+2)
	for _, c := range res.Compensations {
		assert.Contains(t, []workflows.CompState{workflows.CompDone, workflows.CompAlreadyRestored}, c.State, "compensation of %s", c.Step)
	}
	assertBaseline("after the rollback")
	f.assertHistoryBounded(t)
}

// TestE2ELimitsOneOverIsRefused: one step or one kilobyte more than the
// limits is refused by the CLI before anything starts, naming the limit.
func TestE2ELimitsOneOverIsRefused(t *testing.T) {
	f := newFixture(t, "e2e-limits-over")
	path, _ := f.limitsRunbook(t, 2048+1024)
	out, code := cli(t, "deploy", path, "--version", "v-over", "--wait")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, fmt.Sprintf("over the limit of %d bytes", runbook.MaxBundleBytes))
	assert.Contains(t, out, "nothing was started")

	y, err := os.ReadFile(path)
	require.NoError(t, err)
	more := strings.Replace(string(y), "  - name: canary-50\n", "  - name: kv-extra\n    consul: {set: {\""+f.prefix+"extra\": \"x\"}}\n  - name: canary-50\n", 1)
	require.NoError(t, os.WriteFile(path, []byte(more), 0o644))
	out, code = cli(t, "validate", path)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, fmt.Sprintf("runbook has %d steps; the limit is %d", runbook.MaxSteps+1, runbook.MaxSteps))

	_, err = tclient.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(f.service), "")
	assert.Error(t, err, "no deployment of %s was started", f.service)
	_, ok := kv(t, f.prefix+"extra")
	assert.False(t, ok)
}

// assertHistoryBounded checks the last run's history stays far from
// Temporal's limits (50 MiB, 51 200 events; warnings at 10 MiB / 10 240):
// the bundle is in it once as input, and the migration files once more as
// the migrate activity's input.
func (f *fixture) assertHistoryBounded(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	it := tclient.GetWorkflowHistory(ctx, workflows.WorkflowID(f.service), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	events, size := 0, 0
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		events++
		size += e.Size()
	}
	t.Logf("history: %d events, %.2f MiB", events, float64(size)/(1<<20))
	assert.Less(t, events, 5000)
	assert.Less(t, size, 8<<20)
}

// resetAfterSuccess undoes a successful deployment outside rollbook (the
// test's own clean-up): migrate the schema down, weights back to stable.
func (f *fixture) resetAfterSuccess(t *testing.T) {
	t.Helper()
	db := openDB(t)
	_, err := db.Exec(`DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
	require.NoError(t, err)
	// The demo API's base tables (payments, idempotency_keys): its /api answers need them.
	require.NoError(t, devstack.EnsureDemoSchema(context.Background(), stack.PGDSN))
	_, err = stack.HAProxyCommand("set server payments_api/stable weight 100; set server payments_api/canary weight 0")
	require.NoError(t, err)
}
