package runbook

import (
	"strings"
	"unicode"
)

func (c *checker) checkSteps(steps []Step) {
	switch {
	case len(steps) == 0:
		c.addf("steps", "at least one step is required")
	case len(steps) > MaxSteps:
		c.addf("steps", "runbook has %d steps; the limit is %d", len(steps), MaxSteps)
	}
	c.steps = map[string]int{}
	for i := range steps {
		s := &steps[i]
		p := indexPath("steps", i)
		if c.name(fieldPath(p, "name"), "step name", s.Name) {
			if first, dup := c.steps[s.Name]; dup {
				c.addf(fieldPath(p, "name"), "duplicate step name %q (also steps[%d])", s.Name, first)
			} else {
				c.steps[s.Name] = i
			}
		}
		kinds := s.kinds()
		switch len(kinds) {
		case 0:
			c.addf(p, "step %q has no kind; set exactly one of migrate, consul, traffic, verify, pause, release", s.Name)
		case 1:
		default:
			c.addf(p, "step %q has %d kinds (%s); set exactly one", s.Name, len(kinds), strings.Join(kinds, ", "))
		}
		if s.Irreversible && len(kinds) == 1 && !s.Mutating() {
			c.addf(fieldPath(p, "irreversible"), "only migrate, consul, traffic and release steps can be irreversible; a %s step changes nothing", kinds[0])
		}
		if s.Migrate != nil {
			c.checkMigrate(fieldPath(p, "migrate"), s.Migrate, s.Irreversible)
		}
		if s.Consul != nil {
			c.checkConsul(fieldPath(p, "consul"), s.Consul)
		}
		if s.Traffic != nil {
			c.checkTraffic(fieldPath(p, "traffic"), s.Traffic)
		}
		if s.Verify != nil {
			c.checkVerify(fieldPath(p, "verify"), s.Verify)
		}
		if s.Pause != nil {
			c.checkPause(fieldPath(p, "pause"), s.Pause)
		}
		if s.Release != nil {
			c.checkRelease(fieldPath(p, "release"), s.Release)
		}
	}
}

func (c *checker) checkTraffic(p string, t *TrafficStep) {
	r := c.route(fieldPath(p, "route"), t.Route)
	wp := fieldPath(p, "weights")
	if len(t.Weights) == 0 {
		c.addf(wp, "weights are required (subset: percent, summing to 100)")
		return
	}
	sum := 0
	for _, w := range SortedWeights(t.Weights) {
		kp := keyPath(wp, w.Subset)
		if r != nil && !hasSubset(r, w.Subset) {
			c.addf(kp, "unknown subset %q of route %q (subsets: %s)", w.Subset, r.Name, list(r.Subsets))
		}
		if w.Percent < 0 || w.Percent > 100 {
			c.addf(kp, "weight must be between 0 and 100, got %d", w.Percent)
		}
		sum += w.Percent
	}
	if sum != 100 {
		c.addf(wp, "weights must sum to 100, got %d", sum)
	}
	// A subset left out would keep whatever weight it has now, so the split
	// would not be the one written; every subset gets an explicit share.
	if r != nil {
		var missing []string
		for _, s := range r.Subsets {
			if _, ok := t.Weights[s]; !ok {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			c.addf(wp, "weights must give every subset of route %q a share; missing %s (write 0 explicitly)", r.Name, list(missing))
		}
	}
}

func (c *checker) checkVerify(p string, v *VerifyStep) {
	c.duration(fieldPath(p, "duration"), v.Duration, true, MinInterval, MaxVerifyDuration)
	c.duration(fieldPath(p, "interval"), v.Interval, false, MinInterval, MaxInterval)
	if v.Duration > 0 && v.Interval >= 0 {
		switch {
		case v.Interval > v.Duration:
			c.addf(fieldPath(p, "interval"), "interval %s is longer than the duration %s", fmtDur(v.Interval.D()), fmtDur(v.Duration.D()))
		case v.Interval == 0 && v.Duration.D() < DefaultVerifyInterval:
			c.addf(fieldPath(p, "duration"), "duration %s is shorter than the default interval %s; set interval", fmtDur(v.Duration.D()), fmtDur(DefaultVerifyInterval))
		}
	}
	c.checkChecks(fieldPath(p, "checks"), v.Checks)
}

func (c *checker) checkPause(p string, ps *PauseStep) {
	switch {
	case ps.Duration != 0 && ps.Approval:
		c.addf(p, "set either duration or approval: true, not both")
	case ps.Duration == 0 && !ps.Approval && !c.written(fieldPath(p, "duration")):
		c.addf(p, "a pause needs a duration or approval: true")
	}
	c.duration(fieldPath(p, "duration"), ps.Duration, false, MinInterval, MaxPauseDuration)
	c.duration(fieldPath(p, "timeout"), ps.Timeout, false, MinInterval, MaxApprovalTimeout)
	if ps.Timeout != 0 && !ps.Approval {
		c.addf(fieldPath(p, "timeout"), "timeout applies only to a pause with approval: true")
	}
}

func (c *checker) checkAnalysis(p string, a *Analysis) {
	switch _, ok := c.steps[a.From]; {
	case a.From == "":
		c.addf(fieldPath(p, "from"), "from is required (the step at which analysis starts)")
	case !ok:
		c.addf(fieldPath(p, "from"), "unknown step %q", a.From)
	}
	c.duration(fieldPath(p, "interval"), a.Interval, false, MinInterval, MaxInterval)
	c.checkChecks(fieldPath(p, "checks"), a.Checks)
}

func (c *checker) checkRollback(p string, r *RollbackOptions) {
	if t := r.Traffic; t != nil {
		tp := fieldPath(p, "traffic")
		if len(t.Steps) == 0 {
			c.addf(fieldPath(tp, "steps"), "steps are required (canary percentages on the way back, such as [50, 10])")
		}
		for i, v := range t.Steps {
			sp := indexPath(fieldPath(tp, "steps"), i)
			switch {
			case v < 0 || v > 100:
				c.addf(sp, "must be between 0 and 100, got %d", v)
			case i > 0 && v >= t.Steps[i-1]:
				c.addf(sp, "steps must be strictly decreasing, got %d after %d", v, t.Steps[i-1])
			}
		}
		c.duration(fieldPath(tp, "interval"), t.Interval, true, MinInterval, MaxInterval)
	}
	if r.Verify != nil {
		c.checkVerify(fieldPath(p, "verify"), r.Verify)
		for i, ch := range r.Verify.Checks {
			if ch.Continuous {
				// After the rollback nothing is left to stop early: its
				// verification measures in rounds.
				c.addf(fieldPath(indexPath(fieldPath(fieldPath(p, "verify"), "checks"), i), "continuous"), "continuous checks run in verify steps and the analysis, not in rollback.verify")
			}
		}
	}
	c.duration(fieldPath(p, "stuckAfter"), r.StuckAfter, false, MinInterval, MaxStuckAfter)
}

// checkOrder enforces the rules that depend on the order of steps: the
// point of no return, and expand/contract migrations.
func (c *checker) checkOrder(steps []Step) {
	pivot := -1
	trafficSeen := -1
	fullCanary := -1 // first traffic step that sends 100% to a route's canary
	for i, s := range steps {
		p := indexPath("steps", i)
		if m := s.Migrate; m != nil {
			if pivot >= 0 && !s.Irreversible {
				c.addf(p, "reversible migrate step %q comes after the irreversible step %q: its compensation could never run past the point of no return; mark it irreversible: true or move it before %q",
					s.Name, steps[pivot].Name, steps[pivot].Name)
			}
			switch m.Phase {
			case PhaseExpand:
				if trafficSeen >= 0 {
					c.addf(fieldPath(p, "migrate.phase"), "an expand migration must run before any traffic step, but %q (steps[%d]) shifts traffic first", steps[trafficSeen].Name, trafficSeen)
				}
			case PhaseContract:
				c.checkContract(steps, i, fullCanary)
			}
		}
		if t := s.Traffic; t != nil {
			if trafficSeen < 0 {
				trafficSeen = i
			}
			if r := c.routes[t.Route]; r != nil && t.Weights[r.Canary] == 100 && fullCanary < 0 {
				fullCanary = i
			}
		}
		if s.Irreversible && pivot < 0 {
			pivot = i
		}
	}
}

// checkContract: a contract migration removes what the old version needs,
// so it runs only once the new version takes all traffic, after a human or
// a verification confirmed it, and it cannot be rolled back.
func (c *checker) checkContract(steps []Step, i, fullCanary int) {
	p := indexPath("steps", i)
	s := steps[i]
	if !s.Irreversible {
		c.addf(fieldPath(p, "migrate.phase"), "a contract migration removes what the previous version needs and cannot be rolled back; mark the step irreversible: true")
	}
	if fullCanary < 0 || fullCanary > i {
		c.addf(fieldPath(p, "migrate.phase"), "a contract migration must come after a traffic step that sends 100%% to the canary")
	}
	if i == 0 || !confirms(steps[i-1]) {
		c.addf(fieldPath(p, "migrate.phase"), "a contract migration must directly follow a verify step or a pause with approval: true")
	}
}

func confirms(s Step) bool {
	return s.Verify != nil || (s.Pause != nil && s.Pause.Approval)
}

// hasControl reports control characters (anything unprintable to a log).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}
