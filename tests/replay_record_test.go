package tests

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/workflows"
)

// EnvRecordHistories turns TestRecordHistories on (make histories).
const EnvRecordHistories = "ROLLBOOK_RECORD_HISTORIES"

// historiesDir holds one recorded history per outcome path; the replay test
// in workflows/replay_test.go replays every file there.
var historiesDir = filepath.Join("testdata", "histories")

// TestRecordHistories runs one deployment per outcome path against the real
// dev stack and writes each run's full history as JSON (the format of
// `temporal workflow show --output json`) to testdata/histories/<name>.json.
// It runs only when ROLLBOOK_RECORD_HISTORIES is set:
//
//	ROLLBOOK_RECORD_HISTORIES=1 go test ./tests -run TestRecordHistories -v   (make histories)
//
// A subtest records its file only when its run ended as planned and the new
// history replays against the code that produced it, so a failed refresh
// leaves the committed file alone. One path alone: -run 'TestRecordHistories/aborted'.
func TestRecordHistories(t *testing.T) {
	if os.Getenv(EnvRecordHistories) == "" {
		t.Skipf("records the replay histories; run with %s=1 (make histories)", EnvRecordHistories)
	}
	// The histories are committed and replayed with the default data
	// converter: record them in plain JSON, whatever the caller's shell has.
	t.Setenv("ROLLBOOK_CODEC_KEY", "")
	t.Setenv("ROLLBOOK_CODEC_KEY_FILE", "")
	require.NoError(t, os.MkdirAll(historiesDir, 0o755))

	// succeeded (with pause, resume, a wrong approve and the right one),
	// then reverted: the Revert of that deployment.
	t.Run("succeeded", func(t *testing.T) {
		f := newFixture(t, "hist-succeeded")
		putKV(t, f.prefix+"config/version", "1")
		l := startLoad(t, 40)
		defer l.Stop()
		d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 3 * time.Second, approval: true}), "--version", "v2", "--wait")
		waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
		out, code := cli(t, "pause", f.service)
		require.Equal(t, 0, code, out)
		histWaitStatus(t, f.service, "waiting for resume", func(st workflows.Status) bool { return st.WaitingFor == "resume" })
		out, code = cli(t, "resume", f.service)
		require.Equal(t, 0, code, out)
		histWaitStatus(t, f.service, "waiting for approval", func(st workflows.Status) bool {
			return st.WaitingFor == "approval of step approve-100"
		})
		out, code = cli(t, "approve", f.service, "--step", "canary-100")
		require.Equal(t, 1, code, out)
		assert.Contains(t, out, "ignored approve")
		// Through the Temporal CLI: `rollbook approve` would report this
		// approve as ignored too, since it matches any approve ignored in
		// the last 10 s (see TestE2EApproveAfterAnIgnoredApprove).
		temporalSignal(t, f.service, "approve", `{"step":"approve-100","by":"replay-recorder"}`)
		out, code = d.wait(t, 60*time.Second)
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "outcome: succeeded")
		recordHistory(t, f.service, "succeeded.json", workflows.WorkflowType)

		out, code = cli(t, "revert", f.service, "--wait", "--reason", "replay history")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "outcome: reverted")
		assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
		recordHistory(t, f.service, "reverted.json", workflows.RevertWorkflowType)
	})

	t.Run("rolled-back", func(t *testing.T) {
		f := newFixture(t, "hist-rolled-back")
		setCanaryBad(t, 1)
		defer setCanaryBad(t, 0)
		l := startLoad(t, 40)
		defer l.Stop()
		out, code := cli(t, "deploy", f.runbook(runbookOpts{verifyFor: 4 * time.Second}), "--version", "v3-bad", "--wait")
		require.Equal(t, 2, code, out)
		require.Contains(t, out, "canary-errors")
		recordHistory(t, f.service, "rolled-back.json", workflows.WorkflowType)
	})

	// watch-tripped: a continuous check's watch (WatchRouter) trips on a
	// canary that turns bad during the verification.
	t.Run("watch-tripped", func(t *testing.T) {
		f := newFixture(t, "hist-watch-tripped")
		l := startLoad(t, 60)
		defer l.Stop()
		d := startCLI(t, "deploy", f.watchRunbook(), "--version", "v3-bad", "--wait")
		waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
		time.Sleep(time.Second)
		setCanaryBad(t, 1)
		defer setCanaryBad(t, 0)
		out, code := d.wait(t, 60*time.Second)
		require.Equal(t, 2, code, out)
		require.Contains(t, out, "check canary-errors failed: error rate")
		recordHistory(t, f.service, "watch-tripped.json", workflows.WorkflowType)
	})

	// compare-rolled-back: a compare check's sequential test fails a
	// canary erring on 10 % of its requests (workflows' change
	// sequential-compare).
	t.Run("compare-rolled-back", func(t *testing.T) {
		f := newFixture(t, "hist-compare")
		setCanaryBad(t, 0.1)
		defer setCanaryBad(t, 0)
		l := startLoad(t, 40)
		defer l.Stop()
		out, code := cli(t, "deploy", f.compareRunbook(), "--version", "v3-bad", "--wait")
		require.Equal(t, 2, code, out)
		require.Contains(t, out, "sequential p=")
		recordHistory(t, f.service, "compare-rolled-back.json", workflows.WorkflowType)
	})

	// aborted: an approve with nothing waiting (ignored), then the abort
	// signal sent with the Temporal CLI, as the Web UI does.
	t.Run("aborted", func(t *testing.T) {
		f := newFixture(t, "hist-aborted")
		l := startLoad(t, 40)
		defer l.Stop()
		d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 60 * time.Second}), "--version", "v2", "--wait")
		waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
		out, code := cli(t, "approve", f.service)
		require.Equal(t, 1, code, out)
		temporalSignal(t, f.service, "abort", `{"reason":"recording the aborted path","by":"replay-recorder"}`)
		out, code = d.wait(t, 60*time.Second)
		require.Equal(t, 3, code, out)
		recordHistory(t, f.service, "aborted.json", workflows.WorkflowType)
	})

	// rollback-stuck + retry: the capacity check refuses to send traffic to
	// a stable pool in maintenance; a skip of the wrong step is ignored; the
	// pool comes back and retry finishes the rollback.
	t.Run("rollback-stuck-retry", func(t *testing.T) {
		f := newFixture(t, "hist-stuck-retry")
		l := startLoad(t, 40)
		defer l.Stop()
		d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 60 * time.Second}), "--version", "v2", "--wait")
		waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
		setStable(t, "maint")
		defer setStable(t, "ready")
		out, code := cli(t, "abort", f.service, "--reason", "recording the stuck path")
		require.Equal(t, 0, code, out)
		st := waitPhase(t, f.service, workflows.PhaseRollbackStuck, 60*time.Second)
		require.Equal(t, "canary-50", st.CurrentStep)
		out, code = cli(t, "skip", f.service, "--step", "flags")
		require.Equal(t, 1, code, out)
		setStable(t, "ready")
		time.Sleep(1500 * time.Millisecond) // let HAProxy's health check see it up
		out, code = cli(t, "retry", f.service)
		require.Equal(t, 0, code, out)
		out, code = d.wait(t, 60*time.Second)
		require.Equal(t, 3, code, out)
		assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
		recordHistory(t, f.service, "rollback-stuck-retry.json", workflows.WorkflowType)
	})

	// rollback-failed: a key changed by hand is a conflict; the operator
	// skips its compensation.
	t.Run("rollback-failed", func(t *testing.T) {
		f := newFixture(t, "hist-rollback-failed")
		l := startLoad(t, 40)
		defer l.Stop()
		d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 60 * time.Second}), "--version", "v2", "--wait")
		waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
		putKV(t, f.prefix+"features/new-ledger", "hand-edited")
		out, code := cli(t, "abort", f.service, "--reason", "recording the skip path")
		require.Equal(t, 0, code, out)
		st := waitPhase(t, f.service, workflows.PhaseRollbackStuck, 60*time.Second)
		require.Equal(t, "flags", st.CurrentStep)
		out, code = cli(t, "skip", f.service, "--step", "flags", "--reason", "keep the hand edit")
		require.Equal(t, 0, code, out)
		out, code = d.wait(t, 60*time.Second)
		require.Equal(t, 4, code, out)
		require.Contains(t, out, "rollback-failed")
		recordHistory(t, f.service, "rollback-failed.json", workflows.WorkflowType)
	})

	// failed-after-commit: the flags step is irreversible, then the bad
	// canary fails verification; nothing is rolled back.
	t.Run("failed-after-commit", func(t *testing.T) {
		f := newFixture(t, "hist-after-commit")
		setCanaryBad(t, 1)
		defer setCanaryBad(t, 0)
		l := startLoad(t, 40)
		defer l.Stop()
		out, code := cli(t, "deploy", f.runbook(runbookOpts{verifyFor: 4 * time.Second, irreversibleFlags: true}), "--version", "v3-bad", "--wait")
		require.Equal(t, 4, code, out)
		require.Contains(t, out, "failed-after-commit")
		recordHistory(t, f.service, "failed-after-commit.json", workflows.WorkflowType)
	})
}

// histWaitStatus polls the status query until ok accepts it.
func histWaitStatus(t *testing.T, service, what string, ok func(workflows.Status) bool) workflows.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last workflows.Status
	for time.Now().Before(deadline) {
		if st, err := status(service); err == nil {
			last = st
			if ok(st) {
				return st
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("deployment of %s: not %s within 60s (phase %q, step %q, waiting for %q)", service, what, last.Phase, last.CurrentStep, last.WaitingFor)
	return last
}

// setStable puts the demo backend's stable server in state (ready, maint).
func setStable(t *testing.T, state string) {
	t.Helper()
	_, err := stack.HAProxyCommand(fmt.Sprintf("set server %s/stable state %s", devstack.Backend, state))
	require.NoError(t, err)
}

// temporalBin is the pinned Temporal CLI the dev stack runs.
func temporalBin() string {
	if b := os.Getenv("ROLLBOOK_TEMPORAL_BIN"); b != "" {
		return b
	}
	return filepath.Join(devstack.ToolsDir(), "temporal-"+devstack.TemporalCLIVersion, "temporal")
}

// temporalSignal sends a signal with `temporal workflow signal`, exactly
// what the Web UI's "Send a signal" does; extra flags go before --input.
func temporalSignal(t *testing.T, service, name, input string, extra ...string) {
	t.Helper()
	out, err := temporalSignalCmd(service, name, input, extra...).CombinedOutput()
	require.NoError(t, err, "temporal workflow signal %s: %s", name, out)
}

func temporalSignalCmd(service, name, input string, extra ...string) *exec.Cmd {
	args := []string{"workflow", "signal", "--address", stack.TemporalAddress, "--namespace", devstack.Namespace,
		"--workflow-id", workflows.WorkflowID(service), "--name", name}
	args = append(args, extra...)
	args = append(args, "--input", input)
	return exec.Command(temporalBin(), args...)
}

// recordHistory writes the history of the service's latest run to
// testdata/histories/file after checking that it completed as wantType and
// that it replays against the current workflow code.
func recordHistory(t *testing.T, service, file, wantType string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := workflows.WorkflowID(service)
	desc, err := tclient.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	info := desc.GetWorkflowExecutionInfo()
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, info.GetStatus())
	require.Equal(t, wantType, info.GetType().GetName())

	hist := &historypb.History{}
	it := tclient.GetWorkflowHistory(ctx, id, info.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	data, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	// base64 of "binary/encrypted": an encrypted history cannot be replayed
	// with the default converter.
	require.NotContains(t, string(data), "YmluYXJ5L2VuY3J5cHRlZA==", "the history is encrypted: record with the worker's codec off")

	path := filepath.Join(historiesDir, file)
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, append(data, '\n'), 0o644))
	defer os.Remove(tmp)
	r := sdkworker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.Deploy, workflows.RegisterOptions())
	r.RegisterWorkflowWithOptions(workflows.Revert, workflows.RevertRegisterOptions())
	require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), tmp),
		"the new history does not replay against the code that produced it")
	require.NoError(t, os.Rename(tmp, path))
	t.Logf("recorded %s: %d events, %d bytes (%s)", path, len(hist.Events), len(data), strings.TrimSpace(info.GetType().GetName()))
}
