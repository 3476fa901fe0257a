package cli

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/stretchr/testify/assert"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// TestCurrentWeights: the weights shown per route follow the traffic steps
// through a deployment and its rollback, on two routes at once.
func TestCurrentWeights(t *testing.T) {
	rb := &runbook.Runbook{Service: "s", Steps: []runbook.Step{
		{Name: "c10", Traffic: &runbook.TrafficStep{Route: "web"}},
		{Name: "mesh", Traffic: &runbook.TrafficStep{Route: "grpc"}},
		{Name: "c50", Traffic: &runbook.TrafficStep{Route: "web"}},
	}}
	w := func(stable, canary int) map[string]int { return map[string]int{"stable": stable, "canary": canary} }
	step := func(name string, state workflows.StepState, before, set map[string]int) workflows.StepStatus {
		return workflows.StepStatus{Name: name, Kind: "traffic", State: state,
			Captured: &workflows.Captured{Weights: &contract.WeightState{Weights: before}, WeightsSet: set}}
	}
	for _, tc := range []struct {
		name  string
		steps []workflows.StepStatus
		comps []workflows.Compensation
		want  []routeWeights
	}{
		{"nothing captured yet", []workflows.StepStatus{{Name: "c10", State: workflows.StepRunning}}, nil, []routeWeights{}},
		{"first step running: the captured weights", []workflows.StepStatus{step("c10", workflows.StepRunning, w(100, 0), w(90, 10))}, nil,
			[]routeWeights{{"web", w(100, 0), "before c10"}}},
		{"the last applied step wins", []workflows.StepStatus{
			step("c10", workflows.StepApplied, w(100, 0), w(90, 10)),
			step("mesh", workflows.StepApplied, w(100, 0), w(80, 20)),
			step("c50", workflows.StepApplied, w(90, 10), w(50, 50)),
		}, nil, []routeWeights{{"web", w(50, 50), "set by c50"}, {"grpc", w(80, 20), "set by mesh"}}},
		{"being restored", []workflows.StepStatus{
			step("c10", workflows.StepApplied, w(100, 0), w(90, 10)),
		}, []workflows.Compensation{{Step: "c10", State: workflows.CompRunning}},
			[]routeWeights{{"web", w(90, 10), "set by c10, being restored"}}},
		{"the later step compensated: back at the earlier step's weights", []workflows.StepStatus{
			step("c10", workflows.StepApplied, w(100, 0), w(90, 10)),
			step("c50", workflows.StepCompensated, w(90, 10), w(50, 50)),
		}, nil, []routeWeights{{"web", w(90, 10), "restored"}}},
		{"both compensated: the earliest capture", []workflows.StepStatus{
			step("c10", workflows.StepCompensated, w(100, 0), w(90, 10)),
			step("c50", workflows.StepCompensated, w(90, 10), w(50, 50)),
		}, nil, []routeWeights{{"web", w(100, 0), "restored"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newLiveModel(rb, "")
			m.st = workflows.Status{Steps: tc.steps, Compensations: tc.comps}
			assert.Equal(t, tc.want, m.currentWeights())
		})
	}
}

// TestRoundCountsSurviveTrimming: rounds the workflow dropped from its
// bounded list still count, each round once.
func TestRoundCountsSurviveTrimming(t *testing.T) {
	m := newLiveModel(scriptRunbook(false), "")
	round := func(n int, verdicts ...string) workflows.Round {
		r := workflows.Round{Step: "verify-canary", Round: n}
		for _, v := range verdicts {
			r.Judgement = append(r.Judgement, workflows.CheckJudgement{Check: "c", Verdict: v})
		}
		return r
	}
	for _, rounds := range [][]workflows.Round{
		{round(0, workflows.JudgeBaseline), round(1, workflows.JudgePass), round(2, workflows.JudgePass, workflows.JudgeFail)},
		{round(2, workflows.JudgePass, workflows.JudgeFail), round(3, workflows.JudgePass, workflows.JudgeInconclusive)},
		{round(4, workflows.JudgePass, workflows.JudgeBaseline)},
	} {
		next, _ := m.Update(statusMsg{st: workflows.Status{Rounds: rounds}})
		m = next.(liveModel)
	}
	passed, failed, other := m.roundCounts("verify-canary")
	assert.Equal(t, [3]int{2, 1, 1}, [3]int{passed, failed, other})
}

// TestViewApprovalPauseAndWidth: a pause waiting for approval shows what it
// waits for and, without a timeout, no bar; every line is cut to the
// terminal's width.
func TestViewApprovalPauseAndWidth(t *testing.T) {
	rb := scriptRunbook(false)
	rb.Steps = append(rb.Steps[:3], runbook.Step{Name: "approve", Pause: &runbook.PauseStep{Approval: true}}, rb.Steps[3])
	m := newLiveModel(rb, "http://ui/very/long/link/to/the/workflow/run")
	next, _ := m.Update(tea.WindowSizeMsg{Width: 40, Height: 20})
	st := workflows.Status{Service: "demo-api", Version: "v2", Phase: workflows.PhasePaused, WaitingFor: "approval of step approve",
		StartedAt: time.Now().Add(-time.Minute), Steps: pendingSteps(rb)}
	st.Steps[3].State, st.Steps[3].StartedAt = workflows.StepRunning, time.Now().Add(-90*time.Second)
	next, _ = next.Update(statusMsg{st: st})
	view := ansi.Strip(next.View().Content)
	assert.Contains(t, view, "waiting for approval of step approve")
	assert.Contains(t, view, "Waiting for approval of approve")
	assert.Contains(t, view, "1m30s (no timeout)")
	assert.NotContains(t, view, "█")
	assert.Contains(t, view, "Web UI:\nhttp://ui/very/long/link/to/the/workflo", "a link longer than the line gets its own")
	for _, line := range strings.Split(view, "\n") {
		assert.LessOrEqual(t, ansi.StringWidth(line), 40, "line %q", line)
	}
}
