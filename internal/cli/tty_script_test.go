package cli

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rollbook/rollbook/activities/contract"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// scriptedSource plays a sequence of status answers through the interface
// the Temporal poller implements: each frame answers perFrame polls, and
// the result is delivered once the last frame has been shown perFrame
// times (never, when hold is set: the deployment goes on).
type scriptedSource struct {
	frames   []workflows.Status
	result   workflows.Result
	perFrame int
	hold     bool

	mu    sync.Mutex
	polls int
	end   chan struct{}
	once  sync.Once
	// onAbort replaces the script when the abort signal arrives.
	onAbort func(s *scriptedSource)
}

func (s *scriptedSource) Status(context.Context) (workflows.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(s.polls/s.perFrame, len(s.frames)-1)
	s.polls++
	if !s.hold && s.polls >= s.perFrame*len(s.frames) {
		s.once.Do(func() { close(s.end) })
	}
	return s.frames[i], nil
}

func (s *scriptedSource) Result(ctx context.Context) (workflows.Result, error) {
	select {
	case <-s.end:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.result, nil
	case <-ctx.Done():
		return workflows.Result{}, ctx.Err()
	}
}

// Abort records the signal in the file the parent test names
// (ROLLBOOK_TTY_ABORT_LOG) and, when the script says so, turns into a
// rollback.
func (s *scriptedSource) Abort(_ context.Context, sig workflows.AbortSignal) error {
	if err := os.WriteFile(os.Getenv("ROLLBOOK_TTY_ABORT_LOG"), []byte(sig.Reason), 0o600); err != nil {
		return fmt.Errorf("recording the abort signal: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onAbort != nil {
		s.onAbort(s)
	}
	return nil
}

// The scripted deployment: a migration, a canary at 10 %, a 30 s
// verification, an optional pause, and the promotion.
func scriptRunbook(pause bool) *runbook.Runbook {
	rb := &runbook.Runbook{Service: "demo-api", Steps: []runbook.Step{
		{Name: "add-column", Migrate: &runbook.MigrateStep{Database: "app", Dir: "migrations"}},
		{Name: "canary-10", Traffic: &runbook.TrafficStep{Route: "web", Weights: map[string]int{"stable": 90, "canary": 10}}},
		{Name: "verify-canary", Verify: &runbook.VerifyStep{Duration: runbook.Duration(30 * time.Second), Interval: runbook.Duration(time.Second)}},
	}}
	if pause {
		rb.Steps = append(rb.Steps, runbook.Step{Name: "bake", Pause: &runbook.PauseStep{Duration: runbook.Duration(20 * time.Second)}})
	}
	rb.Steps = append(rb.Steps, runbook.Step{Name: "promote", Traffic: &runbook.TrafficStep{Route: "web", Weights: map[string]int{"stable": 0, "canary": 100}}})
	return rb
}

var (
	allStable = map[string]int{"stable": 100, "canary": 0}
	atCanary  = map[string]int{"stable": 90, "canary": 10}
	allCanary = map[string]int{"stable": 0, "canary": 100}
)

func pendingSteps(rb *runbook.Runbook) []workflows.StepStatus {
	var out []workflows.StepStatus
	for _, s := range rb.Steps {
		out = append(out, workflows.StepStatus{Name: s.Name, Kind: s.Kind(), State: workflows.StepPending})
	}
	return out
}

func judged(step string, round int, at time.Time, errRate float64) workflows.Round {
	r := workflows.Round{Step: step, Round: round, At: at, Judgement: []workflows.CheckJudgement{
		{Check: "error-rate", Verdict: workflows.JudgePass, Value: errRate},
		{Check: "p99-latency", Verdict: workflows.JudgePass, Value: 0.21},
	}}
	if errRate > 0.05 {
		r.Judgement[0].Verdict, r.Judgement[0].Reason = workflows.JudgeFail, fmt.Sprintf("5xx ratio %.2f > 0.05", errRate)
	}
	return r
}

// scriptFrames builds the frames up to the running verification (three
// rounds passed): the part both scenarios share.
func scriptFrames(rb *runbook.Runbook, t0 time.Time) []workflows.Status {
	s := workflows.Status{Service: rb.Service, Version: "v2", StartedAt: t0, Phase: workflows.PhaseDeploying, Steps: pendingSteps(rb)}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	s.CurrentStep = "add-column"
	s.Steps[0].State, s.Steps[0].StartedAt = workflows.StepRunning, at(0)
	f1 := clone(s)

	s.Steps[0].State, s.Steps[0].EndedAt, s.Steps[0].Detail = workflows.StepApplied, at(1200*time.Millisecond), "schema app: 3 → 4"
	s.CurrentStep = "canary-10"
	s.Steps[1].State, s.Steps[1].StartedAt = workflows.StepRunning, at(1300*time.Millisecond)
	s.Steps[1].Captured = &workflows.Captured{Weights: &contract.WeightState{Weights: allStable}, WeightsSet: atCanary}
	s.Compensations = []workflows.Compensation{
		{Step: "add-column", Kind: "migrate", State: workflows.CompPending, ApplyDone: true},
		{Step: "canary-10", Kind: "traffic", State: workflows.CompPending},
	}
	f2 := clone(s)

	s.Steps[1].State, s.Steps[1].EndedAt, s.Steps[1].Detail = workflows.StepApplied, at(1600*time.Millisecond), "web: canary=0% stable=100% → canary=10% stable=90%"
	s.Compensations[1].ApplyDone = true
	s.Phase, s.CurrentStep = workflows.PhaseVerifying, "verify-canary"
	// The child starts the script 10 s in the past: the verification has
	// run for over 8 s, its bar is about a quarter full.
	vStart := at(1700 * time.Millisecond)
	s.Steps[2].State, s.Steps[2].StartedAt = workflows.StepRunning, vStart
	s.Rounds = []workflows.Round{judged("verify-canary", 1, vStart.Add(time.Second), 0.004), judged("verify-canary", 2, vStart.Add(2*time.Second), 0.006)}
	f3 := clone(s)
	s.Rounds = append(s.Rounds, judged("verify-canary", 3, vStart.Add(3*time.Second), 0.003))
	f4 := clone(s)
	return []workflows.Status{f1, f2, f3, f4}
}

// clone copies the slices a frame holds, so later frames do not change it.
func clone(s workflows.Status) workflows.Status {
	s.Steps = append([]workflows.StepStatus(nil), s.Steps...)
	s.Rounds = append([]workflows.Round(nil), s.Rounds...)
	s.Compensations = append([]workflows.Compensation(nil), s.Compensations...)
	return s
}

// rollbackScript: round 4 fails the verification and the deployment rolls
// back (canary weights, then the migration), ending rolled-back.
func rollbackScript(t0 time.Time) (*runbook.Runbook, *scriptedSource) {
	rb := scriptRunbook(false)
	frames := scriptFrames(rb, t0)
	s := clone(frames[len(frames)-1])
	vStart := s.Steps[2].StartedAt
	reason := "verify-canary: check error-rate failed: 5xx ratio 0.12 > 0.05"
	s.Rounds = append(s.Rounds, judged("verify-canary", 4, vStart.Add(4*time.Second), 0.12))
	s.Steps[2].State, s.Steps[2].EndedAt, s.Steps[2].Detail = workflows.StepFailed, vStart.Add(4*time.Second), "error-rate: 5xx ratio 0.12 > 0.05"
	s.Phase, s.Reason, s.CurrentStep = workflows.PhaseRollingBack, reason, ""
	s.Compensations[1].State, s.Compensations[1].StartedAt = workflows.CompRunning, time.Now()
	s.Compensations[1].Detail = "set web back to canary=0% stable=100%"
	frames = append(frames, clone(s))

	s.Steps[1].State = workflows.StepCompensated
	s.Compensations[1].State, s.Compensations[1].EndedAt = workflows.CompDone, time.Now().Add(400*time.Millisecond)
	s.Compensations[0].State, s.Compensations[0].StartedAt = workflows.CompRunning, time.Now().Add(500*time.Millisecond)
	s.Compensations[0].Detail = "migrate app down to version 3"
	frames = append(frames, clone(s))

	steps := clone(s).Steps
	steps[0].State = workflows.StepCompensated
	comps := clone(s).Compensations
	comps[0].State, comps[0].EndedAt = workflows.CompDone, time.Now().Add(1500*time.Millisecond)
	res := workflows.Result{Service: rb.Service, Version: "v2", Outcome: workflows.OutcomeRolledBack, FailedStep: "verify-canary",
		Reason: reason, Steps: steps, Compensations: comps, StartedAt: t0,
		RollbackStartedAt: time.Now(), RollbackEndedAt: time.Now().Add(1500 * time.Millisecond)}
	return rb, &scriptedSource{frames: frames, result: res, perFrame: 4, end: make(chan struct{})}
}

// successScript: the verification passes, a 20 s pause runs, the canary is
// promoted to 100 %, the deployment succeeds.
func successScript(t0 time.Time) (*runbook.Runbook, *scriptedSource) {
	rb := scriptRunbook(true)
	frames := scriptFrames(rb, t0)
	s := clone(frames[len(frames)-1])
	vStart := s.Steps[2].StartedAt
	s.Steps[2].State, s.Steps[2].EndedAt, s.Steps[2].Detail = workflows.StepPassed, vStart.Add(30*time.Second), "3 rounds passed"
	s.Phase, s.CurrentStep = workflows.PhasePaused, "bake"
	s.Steps[3].State, s.Steps[3].StartedAt = workflows.StepRunning, time.Now().Add(-5*time.Second)
	frames = append(frames, clone(s))

	s.Steps[3].State, s.Steps[3].EndedAt = workflows.StepPassed, time.Now()
	s.Phase, s.CurrentStep = workflows.PhaseDeploying, "promote"
	s.Steps[4].State, s.Steps[4].StartedAt, s.Steps[4].EndedAt = workflows.StepApplied, time.Now(), time.Now().Add(300*time.Millisecond)
	s.Steps[4].Captured = &workflows.Captured{Weights: &contract.WeightState{Weights: atCanary}, WeightsSet: allCanary}
	frames = append(frames, clone(s))
	// A success discards the compensations (the point of no return, or the
	// end): no rollback to show.
	comps := clone(s).Compensations
	for i := range comps {
		comps[i].State, comps[i].Detail = workflows.CompDiscarded, "discarded at the end of the deployment"
	}
	res := workflows.Result{Service: rb.Service, Version: "v2", Outcome: workflows.OutcomeSucceeded, Steps: clone(s).Steps, Compensations: comps, StartedAt: t0}
	return rb, &scriptedSource{frames: frames, result: res, perFrame: 4, end: make(chan struct{})}
}

// holdScript stays in the verification until it is aborted; with an abort
// it plays the rollback.
func holdScript(t0 time.Time) (*runbook.Runbook, *scriptedSource) {
	rb, src := rollbackScript(t0)
	rolling := append([]workflows.Status(nil), src.frames...)
	src.frames, src.hold = rolling[:4], true
	src.onAbort = func(s *scriptedSource) {
		s.frames, s.hold, s.polls = rolling[4:], false, 0
		s.result.Outcome, s.result.Reason = workflows.OutcomeAborted, "CLI interrupted (interrupt)"
	}
	return rb, src
}

var scripts = map[string]func(time.Time) (*runbook.Runbook, *scriptedSource){
	"rollback": rollbackScript,
	"success":  successScript,
	"hold":     holdScript,
}
