package workflows_test

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/workflows"
)

// historiesDir holds histories recorded from the real server by
// tests/replay_record_test.go (make histories).
var historiesDir = filepath.Join("..", "tests", "testdata", "histories")

// recorded lists every history file, the path it recorded and the signals
// it must contain, so that a refresh that loses a path fails here.
var recorded = []struct {
	file    string
	wfType  string
	outcome workflows.Phase
	signals []string
}{
	{"succeeded.json", workflows.WorkflowType, workflows.OutcomeSucceeded, []string{"pause", "resume", "approve"}},
	{"reverted.json", workflows.RevertWorkflowType, workflows.OutcomeReverted, nil},
	{"rolled-back.json", workflows.WorkflowType, workflows.OutcomeRolledBack, nil},
	{"compare-rolled-back.json", workflows.WorkflowType, workflows.OutcomeRolledBack, nil},
	{"aborted.json", workflows.WorkflowType, workflows.OutcomeAborted, []string{"approve", "abort"}},
	{"rollback-stuck-retry.json", workflows.WorkflowType, workflows.OutcomeAborted, []string{"abort", "skip", "retry"}},
	{"rollback-failed.json", workflows.WorkflowType, workflows.OutcomeRollbackFailed, []string{"abort", "skip"}},
	{"failed-after-commit.json", workflows.WorkflowType, workflows.OutcomeFailedAfterCommit, nil},
	{"watch-tripped.json", workflows.WorkflowType, workflows.OutcomeRolledBack, nil},
}

func quiet() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// newReplayer registers the workflows exactly as workers do.
func newReplayer() worker.WorkflowReplayer {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.Deploy, workflows.RegisterOptions())
	r.RegisterWorkflowWithOptions(workflows.Revert, workflows.RevertRegisterOptions())
	return r
}

func loadHistory(t *testing.T, path string) *historypb.History {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, h.Events)
	return h
}

// TestReplayRecordedHistories replays every recorded history against the
// current workflow code. A failure means a change is not deterministic for
// runs already in flight: guard it with workflow.GetVersion (README,
// "Changing the workflow code"), or, if no such run can exist, refresh the
// histories with make histories.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	require.NoError(t, err)
	var listed []string
	for _, r := range recorded {
		listed = append(listed, filepath.Join(historiesDir, r.file))
	}
	sort.Strings(listed)
	require.Equal(t, listed, files, "every outcome path has one history and every history is listed in recorded")

	for _, rec := range recorded {
		t.Run(rec.file, func(t *testing.T) {
			path := filepath.Join(historiesDir, rec.file)
			h := loadHistory(t, path)

			// The file still records the path it is named after.
			first, last := h.Events[0], h.Events[len(h.Events)-1]
			require.Equal(t, rec.wfType, first.GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName())
			require.Equal(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, last.GetEventType())
			var res workflows.Result
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(last.GetWorkflowExecutionCompletedEventAttributes().GetResult(), &res))
			assert.Equal(t, rec.outcome, res.Outcome)
			var signals []string
			for _, ev := range h.Events {
				if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
					signals = append(signals, a.GetSignalName())
				}
			}
			for _, s := range rec.signals {
				assert.Contains(t, signals, s)
			}

			require.NoError(t, newReplayer().ReplayWorkflowHistoryFromJSONFile(quiet(), path))
		})
	}
}

// TestReplayDetectsNonDeterminism is the guard's own check: a Deploy that
// starts with a timer the recorded runs never had, and one that skips the
// first activity, must both fail to replay.
func TestReplayDetectsNonDeterminism(t *testing.T) {
	extraTimer := func(ctx workflow.Context, in workflows.Input) (workflows.Result, error) {
		if err := workflow.Sleep(ctx, time.Second); err != nil {
			return workflows.Result{}, err
		}
		return workflows.Deploy(ctx, in)
	}
	noWork := func(ctx workflow.Context, in workflows.Input) (workflows.Result, error) {
		return workflows.Result{Outcome: workflows.OutcomeSucceeded}, nil
	}
	for name, fn := range map[string]func(workflow.Context, workflows.Input) (workflows.Result, error){
		"extra timer": extraTimer, "missing activities": noWork,
	} {
		t.Run(name, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(fn, workflows.RegisterOptions())
			err := r.ReplayWorkflowHistoryFromJSONFile(quiet(), filepath.Join(historiesDir, "succeeded.json"))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "TMPRL1100", "the SDK's non-determinism error")
		})
	}
}

// TestReplayOlderHistories replays the histories recorded by earlier
// versions of the workflow code (one folder per recording, kept when the
// top-level ones are refreshed): deployments those versions started may
// still be running when a worker is upgraded, so every GetVersion branch
// they took must still replay.
func TestReplayOlderHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(historiesDir, "*", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "older recordings are kept in folders under %s", historiesDir)
	for _, path := range files {
		t.Run(filepath.Base(filepath.Dir(path))+"/"+filepath.Base(path), func(t *testing.T) {
			require.NoError(t, newReplayer().ReplayWorkflowHistoryFromJSONFile(quiet(), path))
		})
	}
}
