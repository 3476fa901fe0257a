package tests

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/loadgen"
	"github.com/rollbook/rollbook/internal/writecheck"
)

// setCanaryMode puts the canary demo API in a bad mode given as /admin/bad query
// parameters (errorRate, latencyMs, writeFailure); "" makes it good again.
func setCanaryMode(t *testing.T, query string) {
	t.Helper()
	u := stack.DemoCanaryURL + "/admin/good"
	if query != "" {
		u = stack.DemoCanaryURL + "/admin/bad?" + query
	}
	resp, err := http.Post(u, "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "demo admin %s", u)
}

// startMixedLoad sends reads, keyed writes and unkeyed writes through HAProxy until
// stopped (internal/loadgen, as the demo and the benchmark).
func startMixedLoad(t *testing.T, m loadgen.Mix) *loadgen.MixedLoad {
	t.Helper()
	m.BaseURL = stack.HAProxyURL
	l := loadgen.StartMixed(m)
	t.Cleanup(func() { l.Stop() })
	return l
}

func countRows(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, openDB(t).QueryRow(query, args...).Scan(&n))
	return n
}

// TestE2EHAProxyReplaysOnlySafeRequests: the real HAProxy of the dev stack, 50/50 between a
// good stable and a canary that fails every request, and clients that never retry
// themselves. GETs and writes with an Idempotency-Key are replayed on the stable server, so
// their callers see no error; writes without a key are not replayed, so those that reach the
// canary fail. When the canary fails after committing, the replay carries the same key: the stable
// server answers with the stored result (Idempotent-Replayed) and no payment is stored twice.
func TestE2EHAProxyReplaysOnlySafeRequests(t *testing.T) {
	newFixture(t, "e2e-haproxy-writes")
	_, err := stack.HAProxyCommand(fmt.Sprintf("set server %[1]s/stable weight 50; set server %[1]s/canary weight 50", devstack.Backend))
	require.NoError(t, err)
	defer setCanaryMode(t, "")
	db := openDB(t)

	for _, failure := range []string{"after-commit", "before-commit"} {
		t.Run(failure, func(t *testing.T) {
			_, err := db.Exec(`TRUNCATE payments, idempotency_keys`)
			require.NoError(t, err)
			setCanaryMode(t, "errorRate=1&writeFailure="+failure)
			l := startMixedLoad(t, loadgen.Mix{Rate: 80, WriteShare: 0.5, UnkeyedShare: 0.3, Retries: -1})
			time.Sleep(4 * time.Second)
			rep := l.Stop()
			c := rep.Counts
			t.Logf("%s: %+v; error samples: %s", failure, c, strings.Join(rep.ErrSamples, "; "))

			require.Greater(t, c.Keyed.Sent, int64(50))
			require.Greater(t, c.Unkeyed.Sent, int64(20))
			assert.Zero(t, c.Reads.Errors, "GETs are replayed on stable")
			assert.Zero(t, c.Keyed.Errors, "keyed writes are replayed on stable")
			assert.Zero(t, c.Keyed.Retried, "the client itself never retried")
			// An unkeyed write that reaches the canary is not replayed, so it fails. (How many
			// reach it depends on how round robin interleaves them with the replays of the
			// other requests: with this load's fixed pattern, nearly all of them.)
			assert.Positive(t, c.Unkeyed.Errors, "unkeyed writes are not replayed")

			res, err := writecheck.Check(context.Background(), stack.PGDSN, rep.Acks)
			require.NoError(t, err)
			t.Log(res)
			require.NoError(t, res.Require())
			assert.Equal(t, len(rep.Acks), res.Found)

			replayed := 0
			for _, a := range rep.Acks {
				if a.Replayed {
					replayed++
				}
			}
			rows := countRows(t, `SELECT count(*) FROM payments`)
			if failure == "after-commit" {
				// Every keyed write that hit the canary was stored there, then replayed on
				// stable from the idempotency store.
				assert.Greater(t, replayed, 10, "keyed writes answered from the idempotency store")
				assert.Equal(t, len(rep.Acks)+int(c.Unkeyed.Errors), rows,
					"one row per acknowledged write, plus one per failed unkeyed write the canary committed: nothing stored twice")
			} else {
				assert.Zero(t, replayed)
				assert.Equal(t, len(rep.Acks), rows, "a failure before the commit stores nothing")
			}
		})
	}
}

// TestE2EBadReleaseUnderMixedLoadKeepsEveryWrite: a bad release (its canary fails half the
// requests, writes before and after committing) under mixed read/write load, rolled back
// with its migrations. Every write a caller was told succeeded is found afterwards — in the
// live tables or in rollbook's archive — with the values sent, none twice; callers with an
// idempotency key saw no error.
//
// The v2 writes put data in ledger_entries and payments.external_reference, which the
// rollback's Down sections drop: this test passes only with the archive (issue 11 part 3).
func TestE2EBadReleaseUnderMixedLoadKeepsEveryWrite(t *testing.T) {
	f := newFixture(t, "e2e-writes-bad")
	f.seed()
	setCanaryMode(t, "errorRate=0.5&writeFailure=both")
	defer setCanaryMode(t, "")
	l := startMixedLoad(t, loadgen.Mix{Rate: 60})
	out, code := cli(t, "deploy", f.runbook(runbookOpts{}), "--version", "v3-bad", "--wait", "--json")
	rep := l.Stop()
	require.Equal(t, 2, code, out)
	assert.Contains(t, out, `"outcome":"rolled-back"`)
	f.assertRestored()

	c := rep.Counts
	t.Logf("client counts: %+v; error samples: %s", c, strings.Join(rep.ErrSamples, "; "))
	assert.Zero(t, c.Reads.Errors)
	assert.Zero(t, c.Keyed.Errors, "keyed writes: HAProxy and the client retry with the same key")
	v2 := 0
	for _, a := range rep.Acks {
		if a.Ledger {
			v2++
		}
	}
	require.Positive(t, v2, "the canary acknowledged writes with ledger entries (the data the rollback must keep)")

	res, err := writecheck.Check(context.Background(), stack.PGDSN, rep.Acks)
	require.NoError(t, err)
	t.Log(res)
	for _, a := range res.Archives {
		t.Log("archived: ", a)
	}
	require.NoError(t, res.Require())
	assert.Equal(t, len(rep.Acks), res.Found)
	assert.Positive(t, res.FoundInArchive, "v2's ledger entries and references survive in the archive")
}
