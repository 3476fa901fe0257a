package devstack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"
)

// How every component starts without losing a race for its ports.
//
// freePorts finds ports that are free at that moment and lets them go; the component's
// process binds them later. In between, anything on the machine can take one: another
// stack starting at the same time (`go test ./...` runs one per test package), the
// Temporal dev server of any stack (it picks its internal ports the same way), a client's
// connection. The programs are not ours (HAProxy, Consul, PostgreSQL, the Temporal CLI) and
// not all of them can inherit a bound socket, so every start is made to survive the race:
//
//  1. a process that exits during its start with "address already in use" in its log lost
//     the race for a port;
//  2. a start counts only when the component's own process is the only one listening on
//     each of its ports (listenerOf): another stack's server on a stolen port answers the
//     readiness check too (another demo API's /healthz, another Consul's leader), and must
//     not be taken for ours;
//  3. a component that lost the race is stopped and started again: during Start on new
//     ports (the Stack's fields, and then the env and ports files, follow them); in a
//     restart (StartComponent) on the same ports, which clients already know, after a
//     pause, since the usual holder is short-lived (another stack's freePorts probe).
//
// HAProxy's configuration sets noreuseport: with SO_REUSEPORT, the default, a second
// HAProxy of the same user binds a port that another one listens on without any error,
// and the kernel splits the connections between the two stacks.

// ErrPortTaken is wrapped by the error of a component's start that kept losing one of its
// ports to another process (see portTakenError for what it says).
var ErrPortTaken = errors.New("devstack: port taken")

// startAttempts bounds the starts of one component that lose the race for a port.
const startAttempts = 5

// foreignGrace is how long a component that answers may go on while another process
// listens on one of its ports, before its start counts as lost. Our process normally
// exits at once when its bind fails; this is for a program that would keep running
// without the port.
const foreignGrace = 15 * time.Second

// restartPause is the first pause before a restart tries the same ports again (doubled
// at each attempt).
const restartPause = 250 * time.Millisecond

// componentDemo is the two demo API instances, started together by startDemo. It is not
// restartable (Components), but Start runs it like the others.
const componentDemo = "demo api"

// component describes one part of the stack for startComponent.
type component struct {
	name string
	// ports returns the component's fields of pt. They move together.
	ports func(pt *stackPorts) []*int
	// listeners maps each of the component's processes (by their name in the pids file)
	// to the ports it must listen on once started.
	listeners func(pt stackPorts) map[string][]int
	// childrenListen: the component's process hands its ports to processes it starts
	// (the release supervisor and its demo API instances).
	childrenListen bool
	// start spawns the component's processes on pt and waits until they answer.
	start func(ctx context.Context, b binaries, pt stackPorts) error
	// addrs sets the Stack's fields derived from the component's ports.
	addrs func(pt stackPorts)
}

func (s *Stack) component(name string) component {
	switch name {
	case ComponentTemporal:
		return component{
			name: name,
			ports: func(pt *stackPorts) []*int {
				return []*int{&pt.Temporal, &pt.TemporalHTTP, &pt.TemporalMetrics, &pt.TemporalUI}
			},
			listeners: func(pt stackPorts) map[string][]int {
				ports := []int{pt.Temporal, pt.TemporalHTTP, pt.TemporalMetrics}
				if s.opts.WebUI {
					ports = append(ports, pt.TemporalUI)
				}
				return map[string][]int{"temporal": ports}
			},
			start: s.startTemporal,
			addrs: func(pt stackPorts) {
				s.TemporalAddress = hostPort(pt.Temporal)
				if s.opts.WebUI {
					s.WebUI = "http://" + hostPort(pt.TemporalUI)
				}
			},
		}
	case ComponentConsul:
		return component{
			name: name,
			ports: func(pt *stackPorts) []*int {
				return []*int{&pt.ConsulHTTP, &pt.ConsulSerfLAN, &pt.ConsulSerfWAN, &pt.ConsulServer}
			},
			listeners: func(pt stackPorts) map[string][]int {
				return map[string][]int{"consul": {pt.ConsulHTTP, pt.ConsulSerfLAN, pt.ConsulSerfWAN, pt.ConsulServer}}
			},
			start: s.startConsul,
			addrs: func(pt stackPorts) { s.ConsulHTTPAddr = "http://" + hostPort(pt.ConsulHTTP) },
		}
	case ComponentPostgres:
		return component{
			name:      name,
			ports:     func(pt *stackPorts) []*int { return []*int{&pt.PG} },
			listeners: func(pt stackPorts) map[string][]int { return map[string][]int{"postgres": {pt.PG}} },
			start:     s.startPostgres,
			addrs:     func(stackPorts) {}, // startPostgres writes the DSNs: they need the password
		}
	case componentDemo:
		return component{
			name:  name,
			ports: func(pt *stackPorts) []*int { return []*int{&pt.DemoStable, &pt.DemoCanary} },
			listeners: func(pt stackPorts) map[string][]int {
				// The release supervisor runs both instances as its children.
				return map[string][]int{ComponentDemoSupervisor: {pt.DemoStable, pt.DemoCanary}}
			},
			childrenListen: true,
			start:          s.startDemo,
			addrs: func(pt stackPorts) {
				s.DemoStableURL = "http://" + hostPort(pt.DemoStable)
				s.DemoCanaryURL = "http://" + hostPort(pt.DemoCanary)
			},
		}
	case ComponentHAProxy:
		return component{
			name: name,
			ports: func(pt *stackPorts) []*int {
				return []*int{&pt.HAProxy, &pt.HAProxyAdmin, &pt.HAProxyStats, &pt.HAProxyMetrics}
			},
			listeners: func(pt stackPorts) map[string][]int {
				return map[string][]int{"haproxy": {pt.HAProxy, pt.HAProxyAdmin, pt.HAProxyStats, pt.HAProxyMetrics}}
			},
			start: s.startHAProxy,
			addrs: func(pt stackPorts) {
				s.HAProxyURL = "http://" + hostPort(pt.HAProxy)
				s.HAProxyAdmin = hostPort(pt.HAProxyAdmin)
				s.HAProxyStatsURL = "http://" + hostPort(pt.HAProxyStats) + "/"
				s.HAProxyMetricsURL = "http://" + hostPort(pt.HAProxyMetrics) + "/metrics"
			},
		}
	case ComponentAlertmanager:
		return component{
			name:      name,
			ports:     func(pt *stackPorts) []*int { return []*int{&pt.Alertmanager} },
			listeners: func(pt stackPorts) map[string][]int { return map[string][]int{name: {pt.Alertmanager}} },
			start:     s.startAlertmanager,
			addrs:     func(pt stackPorts) { s.AlertmanagerURL = "http://" + hostPort(pt.Alertmanager) },
		}
	case ComponentPrometheus:
		return component{
			name:      name,
			ports:     func(pt *stackPorts) []*int { return []*int{&pt.Prometheus} },
			listeners: func(pt stackPorts) map[string][]int { return map[string][]int{name: {pt.Prometheus}} },
			start:     s.startPrometheus,
			addrs:     func(pt stackPorts) { s.PrometheusURL = "http://" + hostPort(pt.Prometheus) },
		}
	}
	panic("devstack: no component " + name)
}

// startComponent starts c and makes sure its own processes listen on its ports; when
// another process took one of them, it stops c and starts it again (see above).
func (s *Stack) startComponent(ctx context.Context, c component, b binaries) error {
	pause := restartPause
	for attempt := 1; ; attempt++ {
		pt := s.portsNow()
		if s.opts.beforeStart != nil {
			s.opts.beforeStart(c.name, pt)
		}
		err := c.start(ctx, b, pt)
		if err == nil {
			if err = s.confirmListeners(ctx, c, pt); err == nil {
				return nil
			}
		}
		taken := s.lostPort(c, pt, err)
		if taken == nil {
			return err
		}
		// What lost the race goes, also when giving up: the stack then does not list a
		// process that never served it.
		if err := s.stopProcs(c, pt); err != nil {
			return errors.Join(taken, err)
		}
		if attempt == startAttempts || ctx.Err() != nil {
			if !errors.Is(err, ErrPortTaken) { // the exit error: it has the end of the log
				return fmt.Errorf("%w (gave up after %d attempts); the last one: %v", taken, attempt, err)
			}
			return fmt.Errorf("%w (gave up after %d attempts)", taken, attempt)
		}
		if s.isUp() {
			// A restart keeps the ports the stack's users already know.
			s.logf("%-9s %v; trying the same ports again in %v", c.name, taken, pause)
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (%v)", taken, ctx.Err())
			case <-time.After(pause):
			}
			pause *= 2
			continue
		}
		moved, err := s.movePorts(c)
		if err != nil {
			return errors.Join(taken, err)
		}
		s.logf("%-9s %v; starting it again on new ports %v", c.name, taken, moved)
	}
}

// portsNow returns a copy of the stack's ports.
func (s *Stack) portsNow() stackPorts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.ports
}

func (s *Stack) isUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

// movePorts gives c new free ports (none of them one the stack already uses) and updates
// the Stack's fields; it returns the new ports.
func (s *Stack) movePorts(c component) ([]int, error) {
	s.mu.Lock()
	fields := c.ports(s.ports)
	inUse := s.ports.all()
	s.mu.Unlock()
	fresh, err := freePorts(len(fields), inUse)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	for i, f := range fields {
		*f = fresh[i]
	}
	pt := *s.ports
	s.mu.Unlock()
	c.addrs(pt)
	return fresh, nil
}

// procOf returns the newest process named name, or nil.
func (s *Stack) procOf(name string) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.procs) - 1; i >= 0; i-- {
		if s.procs[i].name == name {
			return s.procs[i]
		}
	}
	return nil
}

// confirmListeners waits until each process of c is the only one listening on each of its
// ports. It returns a *portTakenError when another process shares a port with ours or
// keeps one for foreignGrace, and the process's exit error when it exits.
func (s *Stack) confirmListeners(ctx context.Context, c component, pt stackPorts) error {
	want := c.listeners(pt)
	var foreignSince time.Time
	for {
		var pending []string
		var foreign *portTakenError
		var done <-chan struct{}
		for _, name := range sortedKeys(want) {
			p := s.procOf(name)
			if p == nil {
				return fmt.Errorf("%s: no %s process to check", c.name, name)
			}
			if p.exited() {
				return p.exitError()
			}
			done = doneChan(p)
			for _, port := range want[name] {
				listener := listenerOf
				if c.childrenListen {
					listener = listenerOfTree
				}
				state, err := listener(p.pid, port)
				if err != nil {
					if !p.alive() { // exited while being looked at
						select {
						case <-doneChan(p):
						case <-time.After(time.Second):
						}
						return p.exitError()
					}
					return fmt.Errorf("%s: checking who listens on port %d: %w", c.name, port, err)
				}
				switch state {
				case portOurs:
					continue
				case portShared:
					return &portTakenError{port: port, holder: portHolder(port, p.pid),
						detail: fmt.Sprintf("%s (pid %d) shares it with another process (SO_REUSEPORT)", name, p.pid)}
				case portForeign:
					foreign = &portTakenError{port: port, holder: portHolder(port, p.pid),
						detail: fmt.Sprintf("%s (pid %d) runs without it", name, p.pid)}
				}
				pending = append(pending, fmt.Sprintf("%s on %d", name, port))
			}
		}
		if len(pending) == 0 {
			return nil
		}
		switch {
		case foreign == nil:
			foreignSince = time.Time{}
		case foreignSince.IsZero():
			foreignSince = time.Now()
		case time.Since(foreignSince) > foreignGrace:
			return foreign
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; not listening yet: %s", ctx.Err(), strings.Join(pending, ", "))
		case <-time.After(50 * time.Millisecond):
		case <-done:
		}
	}
}

// lostPort tells whether a start of c that failed with err lost the race for a port: a
// *portTakenError from confirmListeners, or a process of c that exited with "address
// already in use" in its log. Otherwise nil.
func (s *Stack) lostPort(c component, pt stackPorts, err error) *portTakenError {
	if taken, ok := errors.AsType[*portTakenError](err); ok {
		return taken
	}
	want := c.listeners(pt)
	for _, name := range sortedKeys(want) {
		p := s.procOf(name)
		if p == nil || !p.exited() {
			continue
		}
		line := logLine(p.log, "address already in use")
		if line == "" {
			continue
		}
		taken := &portTakenError{detail: fmt.Sprintf("%s exited: %s", name, line)}
		// Which of its ports is held now (it may have been let go since, or be one the
		// program chose itself, like Temporal's internal ports).
		for _, port := range want[name] {
			if holder := portHolder(port, p.pid); holder != "" {
				taken.port, taken.holder = port, holder
				break
			}
		}
		return taken
	}
	return nil
}

// stopProcs stops and forgets every process of c (those that did not exit by themselves).
func (s *Stack) stopProcs(c component, pt stackPorts) error {
	var errs []error
	for _, name := range sortedKeys(c.listeners(pt)) {
		for p := s.procOf(name); p != nil; p = s.procOf(name) {
			if err := stopProc(p); err != nil {
				errs = append(errs, err)
				break
			}
			if err := s.forget(p); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	return errors.Join(errs...)
}

// stopProc stops one process of the stack the way its program wants: PostgreSQL with a
// fast shutdown (SIGINT, like `pg_ctl stop -m fast`, then SIGQUIT), the others with SIGTERM;
// SIGKILL after a grace period.
func stopProc(p *proc) error {
	if p.name == ComponentPostgres {
		return p.stop(15*time.Second, syscall.SIGINT, syscall.SIGQUIT)
	}
	return p.stop(10 * time.Second)
}

// portTakenError says that a component could not have one of its ports.
type portTakenError struct {
	port   int    // 0 when not known
	holder string // who listens on port, when known
	detail string
}

func (e *portTakenError) Error() string {
	var b strings.Builder
	if e.port != 0 {
		fmt.Fprintf(&b, "port %d is taken", e.port)
		if e.holder != "" {
			b.WriteString(" by " + e.holder)
		}
	} else {
		b.WriteString("a port was taken")
	}
	if e.detail != "" {
		b.WriteString(": " + e.detail)
	}
	return b.String()
}

func (e *portTakenError) Unwrap() error { return ErrPortTaken }

// logLine returns the last line of the end of a log that contains substr (any case).
func logLine(path, substr string) string {
	lines := strings.Split(tail(path, 40), "\n")
	for _, l := range slices.Backward(lines) {
		if strings.Contains(strings.ToLower(l), substr) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
