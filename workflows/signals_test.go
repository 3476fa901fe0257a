package workflows

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/rollbook/rollbook/activities"
)

// Bad signals and bad timing (issue 5, item 9): every signal that makes no
// sense — wrong phase, wrong step, wrong payload, absurd size — is recorded
// as ignored (status query and log) and changes nothing else. The cases
// already covered by deploy_test.go (TestBadSignalsChangeNothing,
// TestPauseResumeAndApprove, TestAbortWhileRollingBackIsNoop) are not
// repeated here.

const huge = 1 << 20 // 1 MiB of text in one field

// ignoredWhys lists the ignored signals of a status as "signal: why".
func ignoredWhys(st Status) []string {
	var out []string
	for _, ig := range st.Ignored {
		out = append(out, ig.Signal+": "+ig.Why)
	}
	return out
}

// statusSize is the size of the status query's answer, as a client gets it.
func statusSize(t *testing.T, st Status) int {
	b, err := json.Marshal(st)
	require.NoError(t, err)
	return len(b)
}

// Huge free-text fields are truncated wherever they end up (ignored-signal
// log, reason, result) and never make the status or the result grow with
// them; a huge step name is still compared in full, so it approves nothing.
func TestHugeSignalFieldsAreBounded(t *testing.T) {
	h := newHarness(t)
	big := strings.Repeat("s", huge)
	var before Status
	h.at(35*time.Second, func() {
		before = h.query()
		require.Equal(t, "approval of step approval", before.WaitingFor)
		h.signal(SignalApprove, ApproveSignal{Step: big, By: big})
		h.signal(SignalSkip, OperatorSignal{Step: big, By: big, Reason: big})
		h.signal(SignalPause, OperatorSignal{By: big, Reason: big})
		h.signal(SignalResume, OperatorSignal{By: big})
	})
	h.at(36*time.Second, func() {
		st := h.query()
		assert.Equal(t, PhasePaused, st.Phase)
		assert.Equal(t, "approval of step approval", st.WaitingFor, "a huge step name approves nothing")
		require.Len(t, st.Ignored, 2)
		assert.Equal(t, SignalApprove, st.Ignored[0].Signal)
		assert.Contains(t, st.Ignored[0].Why, "is not waiting for approval (waiting: approval)")
		assert.Equal(t, "skip: no compensation is stuck", ignoredWhys(st)[1])
		for _, ig := range st.Ignored {
			assert.Less(t, len(ig.Why), 300, "ignored-signal text is truncated")
		}
		assert.Less(t, statusSize(t, st), statusSize(t, before)+2000, "the status does not grow with the payloads")
		// The accepted pause and resume had huge "by" fields: they are
		// only logged, truncated.
		assert.False(t, st.Paused)
	})
	h.at(40*time.Second, func() { h.signal(SignalAbort, AbortSignal{Reason: big, By: big}) })
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeAborted, r.Outcome)
	assert.Less(t, len(r.Reason), 128+maxSignalText+50, "reason and by are both truncated")
	assert.True(t, strings.HasPrefix(r.Reason, "aborted by sss"), r.Reason[:40])
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.Less(t, len(b), 64<<10, "the result stays small")
}

// Payloads of the wrong JSON shape for every signal: arrays, strings,
// numbers, objects whose fields have the wrong type. Each is ignored as
// malformed and the deployment goes on to succeed untouched.
func TestWrongJSONShapesAreIgnored(t *testing.T) {
	h := newHarness(t)
	bad := []struct {
		signal  string
		payload any
	}{
		{SignalAbort, []string{"reason", "by"}},
		{SignalAbort, map[string]any{"reason": []int{1}}},
		{SignalAbort, 42},
		{SignalApprove, []any{map[string]string{"step": "approval"}}},
		{SignalApprove, map[string]any{"step": map[string]string{"name": "approval"}}},
		{SignalApprove, true},
		{SignalPause, "pause"},
		{SignalPause, map[string]any{"by": 7}},
		{SignalResume, []int{}},
		{SignalRetry, map[string]any{"by": false}},
		{SignalSkip, map[string]any{"step": []string{"flags"}}},
		{SignalSkip, 3.5},
	}
	h.at(5*time.Second, func() {
		for _, b := range bad {
			h.signal(b.signal, b.payload)
		}
	})
	// The same shapes while a step waits for approval: still nothing.
	h.at(35*time.Second, func() {
		h.signal(SignalApprove, []string{"approval"})
		h.signal(SignalApprove, "approval")
	})
	h.at(36*time.Second, func() {
		st := h.query()
		require.Len(t, st.Ignored, len(bad)+2)
		for i, ig := range st.Ignored {
			assert.Contains(t, ig.Why, "malformed payload", "signal %d (%s)", i, ig.Signal)
		}
		assert.Equal(t, PhasePaused, st.Phase)
		assert.Equal(t, "approval of step approval", st.WaitingFor, "a malformed approve approves nothing")
		h.signal(SignalApprove, ApproveSignal{Step: "approval"})
	})
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeSucceeded, r.Outcome, "no malformed signal aborted or paused the deployment")
	assert.Equal(t, forwardAll, h.calls(false))
	for _, c := range r.Compensations {
		assert.Equal(t, CompPending, c.State)
	}
}

// A signal whose payload is not JSON — another encoding (json/protobuf, as
// `temporal workflow signal --input-meta encoding=json/protobuf` or another
// SDK sends; binary/plain) or json/plain bytes that do not parse — must be
// ignored like a malformed one, and must not stop the workflow from
// receiving the next signal: an abort after it still rolls back.
//
// KNOWN BUG (issue 5 item 9 report): listenForSignals receives into a
// json.RawMessage; the SDK cannot decode such a payload into it, drops it
// and blocks inside the selector callback, which panics the workflow task
// ("trying to block on coroutine which is already blocked"). On a real
// worker the task is retried forever: the deployment is wedged, and no
// abort or rollback can run. The fix receives into converter.RawValue.
func TestNonJSONPayloadDoesNotWedgeTheDeployment(t *testing.T) {
	payloads := map[string]any{
		"json/protobuf": &commonpb.WorkflowType{Name: "not json"},
		"binary/plain":  []byte("\x00\x01 not json"),
		"invalid json/plain": converter.NewRawValue(&commonpb.Payload{
			Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingJSON)},
			Data:     []byte(`{"reason": "unterminated`),
		}),
	}
	for kind, payload := range payloads {
		for _, name := range []string{SignalPause, SignalAbort, SignalApprove, SignalRetry} {
			t.Run(kind+"/"+name, func(t *testing.T) {
				h := newHarness(t)
				h.at(5*time.Second, func() { h.signal(name, payload) })
				h.at(6*time.Second, func() {
					st := h.query()
					require.Len(t, st.Ignored, 1)
					assert.Equal(t, name, st.Ignored[0].Signal)
					assert.Contains(t, st.Ignored[0].Why, "malformed payload")
					assert.Equal(t, PhaseVerifying, st.Phase)
				})
				h.at(10*time.Second, func() { h.signal(SignalAbort, AbortSignal{Reason: "after a bad payload"}) })
				r := h.run(testRunbook())
				assert.Equal(t, OutcomeAborted, r.Outcome)
				assert.Equal(t, "aborted by operator: after a bad payload", r.Reason)
				assert.Equal(t, seq(forwardAll[:6], undoAll), h.calls(false))
			})
		}
	}
}

// knownBug skips a test that shows a bug not fixed yet, unless
// ROLLBOOK_TEST_KNOWN_BUGS is set. Remove the call with the fix.
func knownBug(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("ROLLBOOK_TEST_KNOWN_BUGS") == "" {
		t.Skipf("KNOWN BUG, not fixed yet: %s (run with ROLLBOOK_TEST_KNOWN_BUGS=1)", what)
	}
}

// null (or no payload at all, as the Web UI sends when the input box is
// empty) is an empty object: approve then releases whichever step waits,
// abort rolls back with "no reason given".
func TestNullPayloads(t *testing.T) {
	t.Run("approve", func(t *testing.T) {
		h := newHarness(t)
		h.at(35*time.Second, func() {
			require.Equal(t, "approval of step approval", h.query().WaitingFor)
			h.env.SignalWorkflow(SignalApprove, json.RawMessage("null"))
		})
		h.at(36*time.Second, func() {
			st := h.query()
			assert.Empty(t, st.Ignored)
			assert.Empty(t, st.WaitingFor)
		})
		r := h.run(testRunbook())
		assert.Equal(t, OutcomeSucceeded, r.Outcome)
	})
	t.Run("approve before anything waits", func(t *testing.T) {
		h := newHarness(t)
		h.at(5*time.Second, func() { h.signal(SignalApprove, nil) })
		h.at(35*time.Second, func() {
			st := h.query()
			assert.Equal(t, []string{"approve: no step is waiting for approval"}, ignoredWhys(st))
			assert.Equal(t, "approval of step approval", st.WaitingFor, "an early approve is not remembered")
			h.signal(SignalAbort, nil)
		})
		r := h.run(testRunbook())
		assert.Equal(t, OutcomeAborted, r.Outcome)
		assert.Equal(t, "aborted by operator: no reason given", r.Reason)
	})
}

// Two retries for one stuck compensation: the second is ignored, and it is
// not remembered either: when the retried compensation gets stuck again,
// the workflow waits for a new decision.
func TestRetryDuringARetryDecisionIsIgnored(t *testing.T) {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	n := 0
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		n++
		if n <= 2 {
			return activities.RestoreResult{}, conflict("key app/flag changed since our write")
		}
		return activities.RestoreResult{}, nil
	}
	h.at(60*time.Second, func() {
		require.Equal(t, PhaseRollbackStuck, h.query().Phase)
		h.signal(SignalRetry, OperatorSignal{By: "carol"})
		h.signal(SignalRetry, OperatorSignal{By: "dave"})
		h.signal(SignalSkip, OperatorSignal{Step: "flags", By: "erin"})
	})
	h.at(120*time.Second, func() {
		st := h.query()
		assert.Equal(t, PhaseRollbackStuck, st.Phase, "stuck again: the duplicate retry was not kept for later")
		assertDuplicateDecisions(t, st)
		assert.Equal(t, 2, n)
		h.signal(SignalAbort, AbortSignal{Reason: "while stuck"})
		h.signal(SignalPause, nil)
		h.signal(SignalResume, nil)
	})
	h.at(121*time.Second, func() {
		st := h.query()
		assertDuplicateDecisions(t, st)
		require.Len(t, st.Ignored, 5)
		assert.Equal(t, []string{
			"abort: already rolling back",
			"pause: a rollback or a finished deployment cannot be paused",
			"resume: not paused",
		}, ignoredWhys(st)[2:])
		assert.Equal(t, PhaseRollbackStuck, st.Phase)
		h.signal(SignalRetry, nil)
	})
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeRolledBack, r.Outcome, "neither the skip nor the abort counted")
	assert.NotContains(t, r.Reason, "while stuck")
	assert.Equal(t, 3, n)
	assert.Equal(t, seq(forwardAll[:6], []string{"RestoreWeights:canary-10", "RestoreKV:flags", "RestoreKV:flags", "RestoreKV:flags", "MigrateDown:schema"}), h.calls(false))
	assert.Equal(t, "schema=done flags=done canary-10=done", compStates(r))
}

// assertDuplicateDecisions checks that the retry and skip sent right after
// an accepted retry were both ignored. Signals that arrive in the same
// workflow task as the retry find the decision pending; in the test
// environment each signal gets its own task, so the retry has already been
// taken and nothing is stuck while the compensation runs again. Either way
// they change nothing.
func assertDuplicateDecisions(t *testing.T, st Status) {
	t.Helper()
	require.GreaterOrEqual(t, len(st.Ignored), 2)
	for i, want := range []string{SignalRetry, SignalSkip} {
		ig := st.Ignored[i]
		assert.Equal(t, want, ig.Signal)
		assert.Contains(t, []string{"a decision is already pending: retry", "no compensation is stuck"}, ig.Why)
	}
}

// skip and retry while a compensation is running and retrying on its own
// (failing, but not stuck yet) are ignored: the compensation is neither
// skipped nor retried out of turn, and the rollback completes.
func TestSkipAndRetryDuringARunningCompensationAreIgnored(t *testing.T) {
	h := newHarness(t)
	h.measure = func(in activities.MeasureInput) (activities.MeasureResult, error) { return failing(in), nil }
	n := 0
	h.restoreKV = func(activities.KVRestoreInput) (activities.RestoreResult, error) {
		n++
		// Three failed executions (3 attempts each), 1+2+4 s apart: the
		// compensation is retrying, not stuck, for about 9 s.
		if n <= 9 {
			return activities.RestoreResult{}, errors.New("consul: connection refused")
		}
		return activities.RestoreResult{Detail: "restored"}, nil
	}
	var during Status
	h.at(3*time.Second, func() {
		during = h.query()
		h.signal(SignalSkip, OperatorSignal{Step: "flags", By: "mallory"})
		h.signal(SignalRetry, OperatorSignal{By: "mallory"})
		h.signal(SignalApprove, ApproveSignal{Step: "approval"})
	})
	h.at(4*time.Second, func() {
		st := h.query()
		assert.Equal(t, []string{
			"skip: no compensation is stuck",
			"retry: no compensation is stuck",
			"approve: no step is waiting for approval",
		}, ignoredWhys(st))
	})
	r := h.run(testRunbook())
	assert.Equal(t, PhaseRollingBack, during.Phase, "the signals arrived while the compensation was retrying")
	assert.Equal(t, "flags", during.CurrentStep)
	assert.Equal(t, OutcomeRolledBack, r.Outcome, "not rollback-failed: nothing was skipped")
	assert.Equal(t, "schema=done flags=done canary-10=done", compStates(r))
	assert.Equal(t, 10, n)
	assert.Equal(t, "restored", r.Compensations[1].Detail)
}

// A flood of ignored signals keeps only the most recent ones in the status.
func TestIgnoredSignalLogIsBounded(t *testing.T) {
	h := newHarness(t)
	h.at(5*time.Second, func() {
		for i := 0; i < 3*maxIgnored; i++ {
			h.signal(SignalResume, nil)
		}
		h.signal(SignalRetry, nil)
	})
	h.at(6*time.Second, func() {
		st := h.query()
		require.Len(t, st.Ignored, maxIgnored)
		assert.Equal(t, "retry: no compensation is stuck", ignoredWhys(st)[maxIgnored-1], "the newest is kept")
		assert.Equal(t, PhaseVerifying, st.Phase)
		h.signal(SignalAbort, AbortSignal{Reason: "done"})
	})
	r := h.run(testRunbook())
	assert.Equal(t, OutcomeAborted, r.Outcome)
}
