package runbook

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Limits enforced by validation. They are generous for real deployments and
// exist so that a typo (5000h instead of 5m) is caught before it runs.
const (
	MaxDeadline       = 7 * 24 * time.Hour
	MaxVerifyDuration = 24 * time.Hour
	MinInterval       = time.Second
	MaxInterval       = time.Hour
	// MinWindow and MaxWindow bound a continuous check's window.
	MinWindow             = 200 * time.Millisecond
	MaxWindow             = 5 * time.Minute
	MaxPauseDuration      = 24 * time.Hour
	MaxApprovalTimeout    = 7 * 24 * time.Hour
	MaxHTTPTimeout        = 5 * time.Minute
	MaxStuckAfter         = 24 * time.Hour
	MaxHTTPSamples        = 100
	MaxKeyBytes           = 512
	MaxValueBytes         = 512 << 10
	MaxConsulOps          = 64 // Consul's limit on operations in one transaction
	DefaultVerifyInterval = 10 * time.Second
)

var serviceRe = regexp.MustCompile(ServicePattern)

// ValidateOption configures Validate.
type ValidateOption func(*checker)

// WithFile names the runbook's file in error messages.
func WithFile(name string) ValidateOption {
	return func(c *checker) { c.file = name }
}

// WithDir enables the file-system checks: migration folders are looked up
// relative to dir (the runbook's folder), must stay inside it, and their
// files must be valid goose migrations.
func WithDir(dir string) ValidateOption {
	return func(c *checker) { c.src = &diskSource{root: dir} }
}

// WithFiles checks migration folders against files (a bundle's files,
// paths relative to the runbook's folder) instead of the disk.
func WithFiles(files []File) ValidateOption {
	return func(c *checker) { c.src = filesSource(files) }
}

// Validate checks a runbook's semantics (everything Parse checks after
// decoding, plus migration folders when WithDir or WithFiles is given). It
// returns nil or an Errors. It is deterministic and, without WithDir, does
// no I/O, so workflow code may call it.
func Validate(rb *Runbook, opts ...ValidateOption) error {
	c := &checker{}
	for _, o := range opts {
		o(c)
	}
	c.runbook(rb)
	return c.errs.err()
}

// checker collects semantic errors; pos gives them lines when the runbook
// came from YAML.
type checker struct {
	file string
	pos  positions
	src  migrationSource
	errs Errors

	rb     *Runbook
	routes map[string]*Route
	steps  map[string]int
}

func (c *checker) addf(path, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{File: c.file, Line: c.pos.line(path), Path: path, Msg: clip(fmt.Sprintf(format, args...))})
}

// addErr records err (keeping it for errors.Is) at path.
func (c *checker) addErr(path string, err error) {
	c.errs = append(c.errs, &FieldError{File: c.file, Line: c.pos.line(path), Path: path, Msg: clip(err.Error()), Err: err})
}

// written reports whether path was present in the YAML (unknown without
// positions): it tells "0s" apart from "not set".
func (c *checker) written(path string) bool {
	_, ok := c.pos[path]
	return ok
}

func (c *checker) runbook(rb *Runbook) {
	c.rb = rb
	switch {
	case rb.APIVersion == "":
		c.addf("apiVersion", "apiVersion is required; use %q", APIVersion)
	case rb.APIVersion != APIVersion:
		c.addf("apiVersion", "unsupported apiVersion %q; this version of rollbook reads %q", rb.APIVersion, APIVersion)
	}
	switch {
	case rb.Service == "":
		c.addf("service", "service is required")
	case !serviceRe.MatchString(rb.Service):
		c.addf("service", "invalid service name %s: use lowercase letters, digits and '-', starting with a letter, at most 63 characters", quoteShort(rb.Service))
	}
	switch {
	case len(rb.Description) > MaxDescriptionBytes:
		c.addf("description", "description is %d bytes; keep it under %d", len(rb.Description), MaxDescriptionBytes)
	case hiddenChar(rb.Description) != "":
		c.addf("description", "%s is not allowed: it would hide or reorder text where the description is shown", hiddenChar(rb.Description))
	}
	c.duration("deadline", rb.Deadline, false, MinInterval, MaxDeadline)
	c.checkRoutes(rb.Routes)
	c.checkSteps(rb.Steps)
	c.checkOrder(rb.Steps)
	if rb.Analysis != nil {
		c.checkAnalysis("analysis", rb.Analysis)
	}
	if rb.Notify != nil {
		c.checkNotify(rb.Notify)
	}
	if rb.Rollback != nil {
		c.checkRollback("rollback", rb.Rollback)
	}
}

// name checks a required name against NamePattern (see CheckName).
func (c *checker) name(path, what, v string) bool {
	if err := CheckName(what, v); err != nil {
		c.addf(path, "%s", nameMsg(err))
		return false
	}
	return true
}

// nameMsg is CheckName's message without the sentinel's prefix, which
// would repeat what the message says.
func nameMsg(err error) string {
	msg, _ := strings.CutPrefix(err.Error(), ErrName.Error()+": ")
	return msg
}

// duration checks an optional (or required) duration against bounds.
func (c *checker) duration(path string, d Duration, required bool, lo, hi time.Duration) {
	switch {
	case d < 0 || (d == 0 && c.written(path)):
		c.addf(path, "must be positive, got %s", fmtDur(d.D()))
	case d == 0 && required:
		c.addf(path, "is required (a duration such as 5m)")
	case d == 0:
	case d.D() < lo:
		c.addf(path, "must be at least %s, got %s", fmtDur(lo), fmtDur(d.D()))
	case d.D() > hi:
		c.addf(path, "must be at most %s, got %s", fmtDur(hi), fmtDur(d.D()))
	}
}

// fmtDur prints 24h rather than 24h0m0s.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (c *checker) checkRoutes(routes []Route) {
	c.routes = map[string]*Route{}
	if len(routes) > MaxRoutes {
		c.addf("routes", "runbook declares %d routes; the limit is %d", len(routes), MaxRoutes)
	}
	for i := range routes {
		r := &routes[i]
		p := indexPath("routes", i)
		if c.name(fieldPath(p, "name"), "route name", r.Name) {
			if _, dup := c.routes[r.Name]; dup {
				c.addf(fieldPath(p, "name"), "duplicate route name %q", r.Name)
			} else {
				c.routes[r.Name] = r
			}
		}
		c.name(fieldPath(p, "router"), "router", r.Router)
		// The backend and subsets reach HAProxy's runtime API (where ';'
		// starts a new command) and Consul's config entry URLs.
		c.name(fieldPath(p, "backend"), "backend", r.Backend)
		switch {
		case len(r.Subsets) < 2:
			c.addf(fieldPath(p, "subsets"), "a route needs at least 2 subsets (stable and canary), got %d", len(r.Subsets))
		case len(r.Subsets) > MaxSubsets:
			c.addf(fieldPath(p, "subsets"), "a route has at most %d subsets, got %d", MaxSubsets, len(r.Subsets))
		}
		seen := map[string]bool{}
		for j, s := range r.Subsets {
			sp := indexPath(fieldPath(p, "subsets"), j)
			switch {
			case !c.name(sp, "subset", s):
			case seen[s]:
				c.addf(sp, "duplicate subset %q", s)
			}
			seen[s] = true
		}
		for _, f := range []struct{ field, v string }{{"stable", r.Stable}, {"canary", r.Canary}} {
			switch {
			case f.v == "":
				c.addf(fieldPath(p, f.field), "%s is required (one of the subsets)", f.field)
			case !seen[f.v]:
				c.addf(fieldPath(p, f.field), "%s %q is not one of the subsets %s", f.field, f.v, list(r.Subsets))
			}
		}
		if r.Stable != "" && r.Stable == r.Canary {
			c.addf(fieldPath(p, "canary"), "canary and stable must be different subsets, both are %q", r.Canary)
		}
	}
}

// route looks up a route a step or check refers to.
func (c *checker) route(path, name string) *Route {
	if name == "" {
		c.addf(path, "route is required")
		return nil
	}
	r, ok := c.routes[name]
	if !ok {
		if len(c.routes) == 0 {
			c.addf(path, "unknown route %q: the runbook declares no routes", name)
		} else {
			c.addf(path, "unknown route %q (routes: %s)", name, list(c.routeNames()))
		}
	}
	return r
}

func (c *checker) routeNames() []string {
	var names []string
	for _, r := range c.rb.Routes {
		names = append(names, r.Name)
	}
	return names
}

func hasSubset(r *Route, s string) bool {
	for _, x := range r.Subsets {
		if x == s {
			return true
		}
	}
	return false
}

func list(xs []string) string {
	return "[" + strings.Join(xs, ", ") + "]"
}

func (c *checker) checkNotify(n *Notify) {
	if n.Webhook == "" {
		c.addf("notify.webhook", "webhook is required: a webhook name from the worker configuration")
	} else {
		c.name("notify.webhook", "webhook name", n.Webhook)
	}
	seen := map[string]bool{}
	for i, p := range n.Phases {
		path := fmt.Sprintf("notify.phases[%d]", i)
		switch {
		case !slices.Contains(NotifyPhases, p):
			c.addf(path, "unknown phase %q (one of %s)", p, strings.Join(NotifyPhases, ", "))
		case seen[p]:
			c.addf(path, "phase %q is listed twice", p)
		}
		seen[p] = true
	}
}
