package devstack

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/rollbook/rollbook/internal/router/haproxy"
)

//go:embed haproxy.cfg.tmpl
var haproxyTemplate string

var haproxyTmpl = template.Must(template.New("haproxy.cfg").Parse(haproxyTemplate))

// startHAProxy writes <Dir>/haproxy.cfg and runs HAProxy in the foreground (-db), fronting
// the two demo API instances.
func (s *Stack) startHAProxy(ctx context.Context, b binaries, pt stackPorts) error {
	if len(s.HAProxySocket) > 100 { // sun_path is 108 bytes; HAProxy adds a temporary suffix
		return fmt.Errorf("stack directory path too long for a unix socket (%s): use a shorter Options.Dir", s.HAProxySocket)
	}
	var cfg bytes.Buffer
	if err := haproxyTmpl.Execute(&cfg, map[string]any{
		"Socket":       s.HAProxySocket,
		"AdminAddr":    s.HAProxyAdmin,
		"StateFile":    s.HAProxyStateFile(),
		"FrontendAddr": hostPort(pt.HAProxy),
		"StatsAddr":    hostPort(pt.HAProxyStats),
		"MetricsAddr":  hostPort(pt.HAProxyMetrics),
		"Backend":      Backend,
		"Stable":       StableServer,
		"Canary":       CanaryServer,
		"StableAddr":   hostPort(pt.DemoStable),
		"CanaryAddr":   hostPort(pt.DemoCanary),
	}); err != nil {
		return err
	}
	cfgPath := filepath.Join(s.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o644); err != nil {
		return err
	}
	// Start removed the state file of an earlier stack, so a fresh start begins at the
	// configured weights; an empty one (format version 1, no servers) keeps HAProxy from
	// warning about a missing file. A restart of HAProxy alone (StartComponent) keeps what
	// SaveHAProxyState wrote, or an older save: HAProxy loads whatever the file holds.
	if _, err := os.Stat(s.HAProxyStateFile()); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(s.HAProxyStateFile(), []byte("1\n"), 0o644); err != nil {
			return err
		}
	}
	_ = os.Remove(s.HAProxySocket)
	p, err := s.spawn(spawnSpec{name: "haproxy", exe: b.haproxy, args: []string{"-db", "-f", cfgPath}, dir: s.Dir})
	if err != nil {
		return err
	}
	return waitFor(ctx, p, 50*time.Millisecond, func(ctx context.Context) error {
		out, err := s.HAProxyCommand("show servers state " + Backend)
		if err != nil {
			return err
		}
		if !strings.Contains(out, " "+StableServer+" ") {
			return fmt.Errorf("server %s not in %q", StableServer, out)
		}
		return httpOK(ctx, s.HAProxyURL+"/healthz")
	})
}

// HAProxyCommand sends one command (or several separated by ";") to HAProxy's runtime
// API over the unix socket and returns the answer.
func (s *Stack) HAProxyCommand(cmd string) (string, error) {
	if s.HAProxySocket == "" {
		return "", errors.New("no HAProxy socket")
	}
	rt, err := haproxy.New(s.HAProxySocket)
	if err != nil {
		return "", err
	}
	// The driver sends its commands in one write, joined by ";", as HAProxy
	// received the caller's batch.
	var cmds []string
	for _, c := range strings.Split(strings.TrimRight(cmd, "\n"), ";") {
		cmds = append(cmds, strings.TrimSpace(c))
	}
	return rt.Exec(context.Background(), cmds...)
}
