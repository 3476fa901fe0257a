package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Components that StopComponent, StartComponent and Restart accept: the stateful services
// whose outages rollbook must survive. Each comes back on the same ports with the same data:
//
//   - temporal: the dev server reopens <Dir>/temporal.db, with every workflow in it;
//   - consul: the server reopens its Raft log in <Dir>/consul (KV, config entries);
//   - postgres: the cluster under PGDir, the same password and databases;
//   - haproxy: the same configuration; runtime weights come back only if they were saved to
//     the server-state-file first (SaveHAProxyState; Restart does it), otherwise HAProxy
//     starts at the configured weights (stable 256, canary 0), like after a crash.
const (
	ComponentTemporal = "temporal"
	ComponentConsul   = "consul"
	ComponentPostgres = "postgres"
	ComponentHAProxy  = "haproxy"
)

// Components lists the names StopComponent, StartComponent and Restart accept.
var Components = []string{ComponentTemporal, ComponentConsul, ComponentPostgres, ComponentHAProxy}

// ErrUnknownComponent is returned for a name not in Components.
var ErrUnknownComponent = errors.New("devstack: unknown component")

func checkComponent(name string) error {
	if !slices.Contains(Components, name) {
		return fmt.Errorf("%w %q (want one of %s)", ErrUnknownComponent, name, strings.Join(Components, ", "))
	}
	return nil
}

// StopComponent stops one component the way Stop does (SIGTERM; PostgreSQL: a fast
// shutdown, which aborts running transactions) and drops it from the pids file. It saves
// nothing first: for HAProxy that is a restart that loses the runtime weights, like a crash
// or a reload without the state file. Stopping a component that is not running is a no-op.
func (s *Stack) StopComponent(name string) error {
	if err := checkComponent(name); err != nil {
		return err
	}
	s.mu.Lock()
	var procs []*proc
	for _, p := range s.procs {
		if p.name == name {
			procs = append(procs, p)
		}
	}
	s.mu.Unlock()
	for _, p := range procs {
		if err := stopProc(p); err != nil {
			return fmt.Errorf("devstack: stopping %s: %w", name, err)
		}
		if err := s.forget(p); err != nil {
			return err
		}
	}
	s.logf("%-9s stopped", name)
	return nil
}

// StartComponent starts a component stopped by StopComponent again, on the ports and with
// the data it had, and waits until it answers (bounded by ctx and Options.Timeout). It
// refuses when the component still runs.
func (s *Stack) StartComponent(ctx context.Context, name string) error {
	if err := checkComponent(name); err != nil {
		return err
	}
	if s.ports == nil {
		return fmt.Errorf("devstack: cannot start %s: the stack's ports are unknown (no %s)", name, filepath.Join(s.Dir, "ports"))
	}
	s.mu.Lock()
	for _, p := range s.procs {
		if p.name == name && p.alive() {
			s.mu.Unlock()
			return fmt.Errorf("devstack: %s (pid %d) is already running", name, p.pid)
		}
	}
	s.mu.Unlock()
	if s.bins == nil {
		b, err := findBinaries(false)
		if err != nil {
			return err
		}
		s.bins = &b
	}
	timeout := s.opts.Timeout
	if timeout <= 0 {
		timeout = 90 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	return s.timed(start, name, func() error { return s.startComponent(ctx, s.component(name), *s.bins) })
}

// Restart stops a component and starts it again (StopComponent, StartComponent). For
// HAProxy it first saves the runtime state to the server-state-file (SaveHAProxyState), as
// the stack's configuration recommends, so the weights survive; stop and start HAProxy
// yourself to see a restart that loses them.
func (s *Stack) Restart(ctx context.Context, name string) error {
	if name == ComponentHAProxy {
		if err := s.SaveHAProxyState(); err != nil {
			return err
		}
	}
	if err := s.StopComponent(name); err != nil {
		return err
	}
	return s.StartComponent(ctx, name)
}

// HAProxyStateFile is the server-state-file of the stack's HAProxy.
func (s *Stack) HAProxyStateFile() string { return filepath.Join(s.Dir, "haproxy.state") }

// SaveHAProxyState writes HAProxy's `show servers state` to the server-state-file, which the
// next HAProxy process loads (load-server-state-from-file global): runtime weights and
// administrative states then survive a restart or reload. Run it right before stopping
// HAProxy: a stale file brings back stale weights.
func (s *Stack) SaveHAProxyState() error {
	out, err := s.HAProxyCommand("show servers state")
	if err != nil {
		return fmt.Errorf("devstack: saving HAProxy server state: %w", err)
	}
	// The first line is the format version; an answer without it is an error message.
	if !strings.HasPrefix(out, "1\n") {
		return fmt.Errorf("devstack: saving HAProxy server state: unexpected answer %q", out)
	}
	return writeFileAtomic(s.HAProxyStateFile(), []byte(out), 0o644)
}

func writePorts(path string, pt stackPorts) error {
	data, err := json.MarshalIndent(pt, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'), 0o644)
}

func readPorts(path string) (*stackPorts, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pt stackPorts
	if err := json.Unmarshal(data, &pt); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &pt, nil
}
