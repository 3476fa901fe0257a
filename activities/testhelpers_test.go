package activities

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// runActivity executes fn (a method value of a registered activity struct)
// in Temporal's test activity environment, so that payload encoding,
// heartbeats and error conversion are the real ones.
func runActivity[T any](t *testing.T, impl any, fn any, in any) (T, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(impl)
	var out T
	val, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return out, err
	}
	require.NoError(t, val.Get(&out))
	return out, nil
}

// errType returns the ApplicationError type of err and whether it is
// non-retryable ("" when err is not an application error).
func errType(err error) (string, bool) {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type(), app.NonRetryable()
	}
	return "", false
}

func requireErrType(t *testing.T, err error, want string) {
	t.Helper()
	require.Error(t, err)
	typ, nonRetryable := errType(err)
	require.Equal(t, want, typ, "error: %v", err)
	require.True(t, nonRetryable, "error should be non-retryable: %v", err)
}
