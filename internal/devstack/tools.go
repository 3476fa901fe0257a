package devstack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Pinned tool versions. scripts/tools.sh builds exactly these; keep the two in step
// (TestToolVersionsMatchScript checks it).
const (
	TemporalCLIVersion = "v1.5.1"
	ConsulVersion      = "v1.14.11"
	PostgresMajor      = "15"
)

// ErrMissingTool is wrapped by the error Start returns when a binary the stack needs is not
// installed. The message says what to run or install.
var ErrMissingTool = errors.New("devstack: missing tool")

// ToolsDir is where scripts/tools.sh caches the Go-built tools:
// $ROLLBOOK_TOOLS_DIR, else $XDG_CACHE_HOME/rollbook/tools, else ~/.cache/rollbook/tools.
func ToolsDir() string {
	if d := os.Getenv("ROLLBOOK_TOOLS_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "rollbook", "tools")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "rollbook", "tools")
}

// binaries are the resolved paths of every program the stack runs.
type binaries struct {
	temporal, consul, haproxy string
	prometheus, alertmanager  string
	initdb, postgres          string
	goTool                    string // only when the demo API must be built
}

// findBinaries resolves every binary and reports all that are missing in one error.
// Overrides: ROLLBOOK_TEMPORAL_BIN, ROLLBOOK_CONSUL_BIN, ROLLBOOK_HAPROXY_BIN, ROLLBOOK_PG_BINDIR,
// ROLLBOOK_PROMETHEUS_BIN, ROLLBOOK_ALERTMANAGER_BIN.
func findBinaries(needGo bool) (binaries, error) {
	var b binaries
	var missing []string
	const makeTools = `run "make tools" (or "bash scripts/tools.sh"; the first build takes about 7 minutes on 2 cores)`

	b.temporal = envOr("ROLLBOOK_TEMPORAL_BIN", filepath.Join(ToolsDir(), "temporal-"+TemporalCLIVersion, "temporal"))
	if !isExecutable(b.temporal) {
		missing = append(missing, fmt.Sprintf("Temporal CLI %s not found at %s: %s", TemporalCLIVersion, b.temporal, makeTools))
	}
	b.consul = envOr("ROLLBOOK_CONSUL_BIN", filepath.Join(ToolsDir(), "consul-"+ConsulVersion, "consul"))
	if !isExecutable(b.consul) {
		missing = append(missing, fmt.Sprintf("Consul %s not found at %s: %s", ConsulVersion, b.consul, makeTools))
	}

	b.haproxy = os.Getenv("ROLLBOOK_HAPROXY_BIN")
	if b.haproxy == "" {
		b.haproxy = lookPath("haproxy", "/usr/sbin/haproxy")
	}
	if !isExecutable(b.haproxy) {
		missing = append(missing, `haproxy not found: run "make tools" (as root on Debian it installs it) or "apt-get install -y haproxy"`)
	}

	b.prometheus = envOr("ROLLBOOK_PROMETHEUS_BIN", lookPath("prometheus", "/usr/bin/prometheus"))
	if !isExecutable(b.prometheus) {
		missing = append(missing, `prometheus not found: run "make tools" (as root on Debian it installs it) or "apt-get install -y prometheus"`)
	}
	b.alertmanager = envOr("ROLLBOOK_ALERTMANAGER_BIN", lookPath("prometheus-alertmanager", "/usr/bin/prometheus-alertmanager"))
	if !isExecutable(b.alertmanager) {
		missing = append(missing, `prometheus-alertmanager not found: run "make tools" (as root on Debian it installs it) or "apt-get install -y prometheus-alertmanager"`)
	}

	pgBin := os.Getenv("ROLLBOOK_PG_BINDIR")
	if pgBin == "" {
		pgBin = "/usr/lib/postgresql/" + PostgresMajor + "/bin"
		if !isExecutable(filepath.Join(pgBin, "initdb")) {
			if p, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
				pgBin = strings.TrimSpace(string(p))
			}
		}
	}
	b.initdb, b.postgres = filepath.Join(pgBin, "initdb"), filepath.Join(pgBin, "postgres")
	if !isExecutable(b.initdb) || !isExecutable(b.postgres) {
		missing = append(missing, fmt.Sprintf(`PostgreSQL %s server binaries (initdb, postgres) not found in %s: run "make tools" or "apt-get install -y postgresql-%s" (or set ROLLBOOK_PG_BINDIR)`, PostgresMajor, pgBin, PostgresMajor))
	}

	if needGo {
		b.goTool = lookPath("go", filepath.Join(goRoot(), "bin", "go"))
		if !isExecutable(b.goTool) {
			missing = append(missing, "the go command is needed to build examples/demoapi: put Go 1.26 on PATH (or set Options.DemoBinary)")
		}
	}

	if len(missing) > 0 {
		return b, fmt.Errorf("%w:\n  - %s", ErrMissingTool, strings.Join(missing, "\n  - "))
	}
	return b, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func lookPath(name, fallback string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return fallback
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func goRoot() string {
	if r := os.Getenv("GOROOT"); r != "" {
		return r
	}
	return "/usr/local/go"
}
