package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestChaosSmoke runs the crash campaign on two kill points — one forward
// (between two files of the expand migration, success path) and one
// compensation (after the Consul restore, rollback path) — so that `go test
// ./...` keeps the harness, the crash points and the worker wiring working.
// `make chaos` runs every point.
func TestChaosSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the dev stack and kills workers; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "chaos.json")
	rep, err := campaign(ctx, options{points: "mid2:MigrateUp@expand-schema,after:RestoreKV@feature-flags", out: out, rps: 100, log: testWriter{t}}, testWriter{t})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Runs)
	for _, r := range rep.Details {
		require.Len(t, r.Kills, 1, "%s: one kill", r.Point)
		require.Equal(t, "killed", r.Kills[0].Signal, "%s", r.Point)
		require.Contains(t, r.Kills[0].Marker, r.Point, "the worker reached the point")
		for _, c := range r.Checks {
			require.True(t, c.OK, "%s: %s: want %s, got %s (notes %v, events %v)", r.Point, c.Name, c.Want, c.Got, r.Notes, r.Events)
		}
	}
	require.Zero(t, rep.Inconsistent)
	_, err = os.Stat(out)
	require.NoError(t, err, "the JSON report is written")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
