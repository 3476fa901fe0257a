package faults

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Point
	}{
		{"before:MigrateUp", Point{When: "before", Activity: "MigrateUp", N: 1}},
		{"after:ApplyKV@feature-flags", Point{When: "after", Activity: "ApplyKV", Step: "feature-flags", N: 1}},
		{"mid2:MigrateUp@expand-schema", Point{When: "mid", File: 2, Activity: "MigrateUp", Step: "expand-schema", N: 1}},
		{"archived1:MigrateDown@expand-schema", Point{When: "archived", File: 1, Activity: "MigrateDown", Step: "expand-schema", N: 1}},
		{"after:RestoreWeights@canary-100#3", Point{When: "after", Activity: "RestoreWeights", Step: "canary-100", N: 3}},
		{"before:Measure#2", Point{When: "before", Activity: "Measure", N: 2}},
	} {
		got, err := Parse(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
		require.Equal(t, tc.in, got.String(), "String round-trips")
	}
	for _, bad := range []string{"", "MigrateUp", "during:MigrateUp", "mid:MigrateUp", "mid0:MigrateUp", "archived:MigrateDown", "archived0:MigrateDown", "before:", "before:@step", "after:X#0", "after:X#two"} {
		_, err := Parse(bad)
		require.Error(t, err, "%q", bad)
	}
}

// Without ROLLBOOK_CRASHPOINT (as in this test process) everything is a
// no-op: no interceptor, no goose options.
func TestInertWithoutVariable(t *testing.T) {
	require.False(t, Enabled())
	require.Nil(t, Interceptor())
	require.Nil(t, GooseOptions())
	MigrationFileDone(t.Context())
}
