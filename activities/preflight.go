package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rollbook/rollbook/internal/clip"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/internal/signing"
	"github.com/rollbook/rollbook/runbook"
)

// maxProblemText bounds one problem's text: problems echo names and driver
// errors, and they end up in history, status and CI logs.
const maxProblemText = 400

// defaultProbeTimeout bounds each live probe of the preflight.
const defaultProbeTimeout = 5 * time.Second

// Preflight checks, before a deployment changes anything, that the worker
// knows every name the runbook uses and that the live systems have them: the
// databases answer, the routes' backends and subsets exist on their routers,
// the Consul keys are allowed and their captured values fit the history, and
// the bundle is signed by a trusted key when the configuration asks for it.
type Preflight struct {
	// Names checks the runbook's names against the worker configuration
	// (internal/worker.CheckNames bound to the worker's config).
	Names func(*runbook.Runbook) []string
	// The other activity structs lend their clients; nil skips their
	// live checks.
	Migrations *Migrations
	Traffic    *Traffic
	KV         *KV
	// Trusted are the keys bundle signatures are checked against; nil
	// when the worker has no signing configuration.
	Trusted *signing.Trusted
	// RequireSignature refuses unsigned bundles.
	RequireSignature bool
	// ProbeTimeout bounds each live probe (default 5s).
	ProbeTimeout time.Duration
}

// Preflight runs every check and returns all problems at once. Problems are
// the result, not an error: the workflow refuses the deployment and shows
// them. It returns an error only when cancelled.
func (p *Preflight) Preflight(ctx context.Context, in PreflightInput) (PreflightResult, error) {
	var res PreflightResult
	add := func(format string, args ...any) {
		res.Problems = append(res.Problems, clipText(fmt.Sprintf(format, args...), maxProblemText))
	}
	p.checkSignature(&in.Bundle, &res, add)
	if in.SignatureOnly {
		return res, ctx.Err()
	}
	rb := &in.Bundle.Runbook
	if p.Names != nil {
		for _, pr := range p.Names(rb) {
			add("%s", pr)
		}
	}
	p.pingDatabases(ctx, rb, add)
	p.probeRoutes(ctx, rb, add)
	res.CapturedKVBytes = p.projectKV(ctx, rb, add)
	if err := ctx.Err(); err != nil {
		return PreflightResult{}, err
	}
	logger(ctx).Info("preflight done", "service", rb.Service, "problems", len(res.Problems), "signedBy", res.SignedBy)
	return res, nil
}

func (p *Preflight) checkSignature(b *runbook.Bundle, res *PreflightResult, add func(string, ...any)) {
	if p.Trusted == nil {
		if p.RequireSignature {
			add("signature: this worker requires signed bundles but trusts no keys (signing.trustedKeys)")
		}
		return
	}
	err := p.Trusted.Verify(b)
	switch {
	case err == nil:
		res.SignedBy = b.Signature.KeyID
	case errors.Is(err, signing.ErrUnsigned) && !p.RequireSignature:
	case errors.Is(err, signing.ErrUnsigned):
		add("signature: this worker requires signed bundles (signing.require); sign with `rollbook deploy --sign-key FILE` or %s", signing.EnvKeyFile)
	default:
		add("signature: %v", err)
	}
}

func (p *Preflight) probeTimeout() time.Duration {
	if p.ProbeTimeout > 0 {
		return p.ProbeTimeout
	}
	return defaultProbeTimeout
}

// pingDatabases asks every database a migrate step names to answer.
func (p *Preflight) pingDatabases(ctx context.Context, rb *runbook.Runbook, add func(string, ...any)) {
	if p.Migrations == nil {
		return
	}
	pinged := map[string]bool{}
	for i, s := range rb.Steps {
		if s.Migrate == nil || pinged[s.Migrate.Database] {
			continue
		}
		name := s.Migrate.Database
		pinged[name] = true
		if _, ok := p.Migrations.Targets[name]; !ok {
			continue // an unknown name is the names check's problem
		}
		db, _, err := p.Migrations.db(name)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, p.probeTimeout())
			err = db.PingContext(pctx)
			cancel()
		}
		if err != nil {
			// Driver errors name hosts, users and database names: they go
			// to the worker's log, not into history.
			logger(ctx).Warn("preflight: database does not answer", "database", name, "error", err)
			add("steps[%d].migrate.database: database %q does not answer (the worker's log has the driver's error)", i, name)
		}
	}
}

// probeRoutes reads each route's weights: the driver answers ErrNotFound
// when the backend or one of the subsets does not exist.
func (p *Preflight) probeRoutes(ctx context.Context, rb *runbook.Runbook, add func(string, ...any)) {
	if p.Traffic == nil {
		return
	}
	// A router that does not answer is reported once: probing it again
	// for every route would only add timeouts.
	silent := map[string]bool{}
	for i, route := range rb.Routes {
		if silent[route.Router] {
			continue
		}
		// An unknown router or a backend outside the router's
		// allowedBackends is never probed: the names check reports it.
		r, err := resolveRouter(p.Traffic.Routers, route)
		if err != nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, p.probeTimeout())
		_, err = r.Weights(pctx, route.Backend, route.Subsets)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, router.ErrNotFound):
			add("routes[%d]: backend %q or one of its subsets (%s) does not exist on router %s: %v", i, route.Backend, strings.Join(route.Subsets, ", "), route.Router, err)
		default:
			silent[route.Router] = true
			logger(ctx).Warn("preflight: router does not answer", "router", route.Router, "backend", route.Backend, "error", err)
			add("routes[%d]: router %s does not answer for backend %q (the worker's log has the error)", i, route.Router, route.Backend)
		}
	}
}

// projectKV reads the current size of every key the consul steps touch and
// projects the values each step will capture (a key an earlier step set is
// captured with that step's value), so a deployment whose rollback state
// would not fit the history is refused before it starts.
func (p *Preflight) projectKV(ctx context.Context, rb *runbook.Runbook, add func(string, ...any)) int {
	if p.KV == nil || p.KV.Client == nil {
		return 0
	}
	size := map[string]int{}
	total := 0
	for i, s := range rb.Steps {
		if s.Consul == nil {
			continue
		}
		ops := s.Consul.Ops()
		// Only keys the worker may touch are read: a runbook must not
		// learn anything about the rest of the KV store.
		if p.KV.checkOps(ops) != nil {
			continue
		}
		var unread []runbook.KVOp
		for _, op := range ops {
			if _, seen := size[op.Key]; !seen {
				unread = append(unread, op)
			}
		}
		if len(unread) > 0 {
			pctx, cancel := context.WithTimeout(ctx, p.probeTimeout())
			st, err := p.KV.read(pctx, unread)
			cancel()
			if err != nil {
				logger(ctx).Warn("preflight: Consul does not answer", "error", err)
				add("steps[%d].consul: Consul does not answer (the worker's log has the error)", i)
				return total
			}
			for _, e := range st.Entries {
				size[e.Key] = len(e.Value)
			}
		}
		for _, op := range ops {
			total += size[op.Key]
			if op.Delete {
				size[op.Key] = 0
			} else {
				size[op.Key] = len(op.Value)
			}
		}
		if total > MaxCapturedKVBytes {
			add("steps[%d].consul: the keys the consul steps change hold %d bytes up to here; a deployment captures at most %d bytes of Consul values (they travel in workflow history)", i, total, MaxCapturedKVBytes)
			return total
		}
	}
	return total
}

// clipText bounds s to n bytes on a rune boundary, with a marker.
func clipText(s string, n int) string {
	if p := clip.Prefix(s, n); len(p) < len(s) {
		return p + "… (truncated)"
	}
	return s
}
