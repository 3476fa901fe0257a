package worker

import (
	"context"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/activities/contract"
)

// recorder is a worker registry that keeps what Register gives it. The
// embedded interface is nil: a method Register should not call panics.
type recorder struct {
	sdkworker.Registry
	activities map[string]any
	workflows  []string
}

func (r *recorder) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	r.workflows = append(r.workflows, o.Name)
}

func (r *recorder) RegisterActivityWithOptions(fn any, o activity.RegisterOptions) {
	if _, dup := r.activities[o.Name]; dup {
		panic("activity registered twice: " + o.Name)
	}
	r.activities[o.Name] = fn
}

// TestRegisterMatchesContract: every activity the workflows execute by name
// is registered under that name, with the contract's input and output
// types, and nothing else is registered.
func TestRegisterMatchesContract(t *testing.T) {
	r := &recorder{activities: map[string]any{}}
	Register(r, &Activities{
		Migrations: &activities.Migrations{}, KV: &activities.KV{}, Traffic: &activities.Traffic{},
		Checks: &activities.Checks{}, Notifier: &activities.Notifier{}, Release: &activities.Release{},
		Preflight: &activities.Preflight{},
	})
	assert.Equal(t, []string{"Deploy", "Revert"}, r.workflows)

	ctxType := reflect.TypeFor[context.Context]()
	errType := reflect.TypeFor[error]()
	want := map[string]bool{}
	for _, s := range contract.Specs {
		want[s.Name] = true
		fn, ok := r.activities[s.Name]
		if !assert.True(t, ok, "activity %s is not registered", s.Name) {
			continue
		}
		ft := reflect.TypeOf(fn)
		require.Equal(t, reflect.Func, ft.Kind(), s.Name)
		if assert.Equal(t, 2, ft.NumIn(), "%s: parameters", s.Name) {
			assert.Equal(t, ctxType, ft.In(0), "%s: first parameter", s.Name)
			assert.Equal(t, s.In, ft.In(1), "%s: input type", s.Name)
		}
		outs := []reflect.Type{errType}
		if s.Out != nil {
			outs = []reflect.Type{s.Out, errType}
		}
		got := make([]reflect.Type, ft.NumOut())
		for i := range got {
			got[i] = ft.Out(i)
		}
		assert.Equal(t, outs, got, "%s: results", s.Name)
	}
	for name := range r.activities {
		assert.True(t, want[name], "activity %s is registered but not in the contract", name)
	}
}

// TestRegisterSkipsOptionalActivities: a worker without release targets or
// preflight registers the rest and not those.
func TestRegisterSkipsOptionalActivities(t *testing.T) {
	r := &recorder{activities: map[string]any{}}
	Register(r, &Activities{
		Migrations: &activities.Migrations{}, KV: &activities.KV{}, Traffic: &activities.Traffic{},
		Checks: &activities.Checks{}, Notifier: &activities.Notifier{},
	})
	assert.Len(t, r.activities, len(contract.Specs)-4)
	assert.NotContains(t, r.activities, contract.ActivityApplyRelease)
	assert.NotContains(t, r.activities, contract.ActivityPreflight)
	assert.Contains(t, r.activities, contract.ActivityRestoreWeights)
}
