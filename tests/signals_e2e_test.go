package tests

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/workflows"
)

// Bad signals and bad timing against the real stack (issue 5, item 9):
// each gets a clear error or a logged no-op, never a state change.

// liveState is everything a deployment of the e2e runbook can change.
type liveState struct {
	Weights map[string]int
	Schema  int64
	Flag    string
	FlagSet bool
	Version string
}

func (f *fixture) liveState() liveState {
	s := liveState{Weights: weights(f.t), Schema: schemaVersion(f.t)}
	s.Flag, s.FlagSet = kv(f.t, f.prefix+"features/new-ledger")
	s.Version, _ = kv(f.t, f.prefix+"config/version")
	return s
}

// statusJSON is `rollbook status SERVICE --json` while the deployment runs.
func statusJSON(t *testing.T, service string) workflows.Status {
	t.Helper()
	out, code := cli(t, "status", service, "--json")
	require.Equal(t, 0, code, out)
	var v struct {
		Running bool             `json:"running"`
		Status  workflows.Status `json:"status"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	require.True(t, v.Running)
	return v.Status
}

// knownBug skips a test that shows a bug not fixed yet, unless
// ROLLBOOK_TEST_KNOWN_BUGS is set. Remove the call with the fix.
func knownBug(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("ROLLBOOK_TEST_KNOWN_BUGS") == "" {
		t.Skipf("KNOWN BUG, not fixed yet: %s (run with ROLLBOOK_TEST_KNOWN_BUGS=1)", what)
	}
}

func TestE2ESignalsThatMakeNoSenseChangeNothing(t *testing.T) {
	f := newFixture(t, "e2e-badsig")
	putKV(t, f.prefix+"config/version", "1")
	l := startLoad(t, 40)
	defer l.Stop()
	d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 90 * time.Second}), "--version", "v2", "--wait")
	waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
	before := f.liveState()
	require.Equal(t, map[string]int{"stable": 50, "canary": 50}, before.Weights)

	// The rollbook CLI: exit 1 with the workflow's reason.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"approve", f.service, "--step", "canary-100"}, "ignored approve: no step is waiting for approval"},
		{[]string{"skip", f.service, "--step", "flags", "--reason", "nothing is stuck"}, "ignored skip: no compensation is stuck"},
		{[]string{"retry", f.service}, "ignored retry: no compensation is stuck"},
		{[]string{"resume", f.service}, "ignored resume: not paused"},
	} {
		out, code := cli(t, c.args...)
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, c.want)
	}

	// Malformed payloads sent with the real `temporal workflow signal`, as
	// from the Web UI: wrong JSON types and a 100 KB string.
	big := strings.Repeat("x", 100<<10)
	malformed := []struct{ signal, input string }{
		{"abort", `"stop now"`},
		{"abort", `["reason", "by"]`},
		{"abort", `{"reason": 42}`},
		{"approve", `{"step": ["canary-100"]}`},
		{"skip", `{"step": 7, "by": "e2e"}`},
		{"pause", `[]`},
		{"abort", `"` + big + `"`},
	}
	for _, m := range malformed {
		temporalSignal(t, f.service, m.signal, m.input)
	}
	// A 100 KB step name is well-formed JSON: ignored because nothing is
	// stuck, and truncated in the status.
	temporalSignal(t, f.service, "skip", `{"step":"`+big+`"}`)

	time.Sleep(500 * time.Millisecond)
	st := statusJSON(t, f.service)
	assert.Equal(t, workflows.PhaseVerifying, st.Phase, "still verifying")
	assert.False(t, st.Paused)
	require.Len(t, st.Ignored, 4+len(malformed)+1)
	for i, ig := range st.Ignored[4 : 4+len(malformed)] {
		assert.Equal(t, malformed[i].signal, ig.Signal)
		assert.Contains(t, ig.Why, "malformed payload", "signal %d", i)
		assert.Less(t, len(ig.Why), 1000, "a huge payload is truncated in the status")
	}
	last := st.Ignored[len(st.Ignored)-1]
	assert.Equal(t, "skip", last.Signal)
	assert.Equal(t, "no compensation is stuck", last.Why)

	// `rollbook status` shows them.
	out, code := cli(t, "status", f.service)
	require.Equal(t, 0, code, out)
	assert.Equal(t, len(st.Ignored), strings.Count(out, "ignored signal "))
	assert.Contains(t, out, "ignored signal abort")
	assert.Less(t, len(out), 20000, "the status output does not carry the 100 KB payloads")

	assert.Equal(t, before, f.liveState(), "no weight, key or schema changed")

	// The deployment still obeys a real signal. (Sent with the Temporal
	// CLI: `rollbook abort` would report it as ignored because aborts were
	// ignored in the last 10 s, see TestE2EApproveAfterAnIgnoredApprove.)
	temporalSignal(t, f.service, "abort", `{"reason":"end of the bad-signal test","by":"e2e"}`)
	out, code = d.wait(t, 60*time.Second)
	require.Equal(t, 3, code, out)
	assert.Contains(t, out, "end of the bad-signal test")
	after := f.liveState()
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, after.Weights)
	assert.EqualValues(t, 0, after.Schema)
	assert.False(t, after.FlagSet)
	assert.Equal(t, "1", after.Version)
}

func TestE2ESignalsAfterCompletionChangeNothing(t *testing.T) {
	f := newFixture(t, "e2e-late")
	l := startLoad(t, 40)
	out, code := cli(t, "deploy", f.runbook(runbookOpts{verifyFor: 2 * time.Second}), "--version", "v2", "--wait")
	l.Stop()
	require.Equal(t, 0, code, out)
	before := f.liveState()
	require.Equal(t, map[string]int{"stable": 0, "canary": 100}, before.Weights)

	for _, args := range [][]string{
		{"abort", f.service, "--reason", "too late"},
		{"approve", f.service},
		{"retry", f.service},
		{"skip", f.service, "--step", "flags"},
		{"pause", f.service},
		{"resume", f.service},
	} {
		out, code := cli(t, args...)
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "the last deployment of e2e-late already finished (outcome succeeded); "+args[0]+" changes nothing")
	}
	// The Temporal CLI is refused by the server.
	sigOut, err := temporalSignalCmd(f.service, "abort", `{"reason":"too late"}`).CombinedOutput()
	assert.Error(t, err, "%s", sigOut)

	assert.Equal(t, before, f.liveState(), "the finished deployment's changes stay")
	out, code = cli(t, "status", f.service)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "succeeded")
}

func TestE2ECommandsForAServiceWithNoDeployment(t *testing.T) {
	const svc = "e2e-never-deployed"
	for _, args := range [][]string{
		{"status", svc},
		{"status", svc, "--json"},
		{"abort", svc, "--reason", "x"},
		{"approve", svc},
		{"retry", svc},
		{"skip", svc, "--step", "flags"},
		{"pause", svc},
		{"resume", svc},
		{"revert", svc},
		{"revert", svc, "--dry-run"},
	} {
		out, code := cli(t, args...)
		assert.Equal(t, 1, code, "%v: %s", args, out)
		assert.Contains(t, out, svc, "%v names the service", args)
		assert.NotContains(t, out, "panic", "%v", args)
		if args[0] == "revert" {
			assert.Contains(t, out, "nothing to revert for "+svc)
		} else {
			assert.Contains(t, out, "no deployment of service "+svc+" found")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := tclient.DescribeWorkflowExecution(ctx, workflows.WorkflowID(svc), "")
	assert.Error(t, err, "no command started anything")
}

// An approve the workflow accepts must not be reported as ignored because
// an earlier approve was.
//
// KNOWN BUG (CLI, internal/cli/control.go sendSignal): after sending, the
// CLI reports "the deployment ignored approve" if ANY approve was ignored
// in the last 10 s, so the right approve right after a wrong one exits 1
// although the workflow took it. Fix: query the status before sending and
// look only at ignored entries added after it (e.g. compare len(Ignored)
// and the last entry's time), or move the signals to updates with a
// validator.
func TestE2EApproveAfterAnIgnoredApprove(t *testing.T) {
	f := newFixture(t, "e2e-approve")
	l := startLoad(t, 40)
	defer l.Stop()
	d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 2 * time.Second, approval: true}), "--version", "v2", "--wait")
	histWaitStatus(t, f.service, "waiting for approval", func(st workflows.Status) bool {
		return st.WaitingFor == "approval of step approve-100"
	})
	out, code := cli(t, "approve", f.service, "--step", "canary-100")
	require.Equal(t, 1, code, out)
	out, code = cli(t, "approve", f.service, "--step", "approve-100")
	assert.Equal(t, 0, code, "the workflow took this approve: %s", out)
	out, code = d.wait(t, 60*time.Second)
	require.Equal(t, 0, code, out)
}

// A payload that is not JSON at all (here encoding json/protobuf, which
// `temporal workflow signal --input-meta` can send) is ignored, and the
// deployment still obeys the abort that follows.
//
// KNOWN BUG (workflows/signals.go, see workflows/signals_test.go
// TestNonJSONPayloadDoesNotWedgeTheDeployment): today the workflow task
// panics on every attempt; the deployment is wedged and the abort never
// runs. The test terminates the wedged run to clean up.
func TestE2ENonJSONSignalPayload(t *testing.T) {
	f := newFixture(t, "e2e-nonjson")
	l := startLoad(t, 40)
	defer l.Stop()
	d := startCLI(t, "deploy", f.runbook(runbookOpts{verifyFor: 90 * time.Second}), "--version", "v2", "--wait")
	waitPhase(t, f.service, workflows.PhaseVerifying, 60*time.Second)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tclient.TerminateWorkflow(ctx, workflows.WorkflowID(f.service), "", "e2e cleanup")
	})
	temporalSignal(t, f.service, "pause", `{"by":"proto"}`, "--input-meta", "encoding=json/protobuf")
	time.Sleep(500 * time.Millisecond)
	st := statusJSON(t, f.service)
	require.Len(t, st.Ignored, 1)
	assert.Equal(t, "pause", st.Ignored[0].Signal)
	assert.Contains(t, st.Ignored[0].Why, "malformed payload")
	assert.False(t, st.Paused)
	out, code := cli(t, "abort", f.service, "--reason", "after a non-JSON payload")
	require.Equal(t, 0, code, out)
	out, code = d.wait(t, 60*time.Second)
	require.Equal(t, 3, code, out)
	assert.Equal(t, map[string]int{"stable": 100, "canary": 0}, weights(t))
}
