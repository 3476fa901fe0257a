// Package compose holds the structural test of docker-compose.yml. No Docker
// engine runs on the development machines or in CI, so instead of starting
// the stack the test checks what `docker compose up` would trip over: a
// dependency on a service that does not exist or has no health check, a
// mounted file or build context missing from the repository, two services
// on one host port, an image without a pinned tag.
package compose

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/worker"
)

// repoRoot is where docker-compose.yml lives; relative paths in it are
// relative to this folder.
const repoRoot = "../.."

type composeFile struct {
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string         `yaml:"image"`
	Build       any            `yaml:"build"` // "path" or {context, dockerfile, target}
	DependsOn   any            `yaml:"depends_on"`
	Volumes     []any          `yaml:"volumes"` // "src:dst[:mode]" or {type, source, target}
	Ports       []any          `yaml:"ports"`   // "[ip:]host:container[/proto]" or {published, target, host_ip, protocol}
	Healthcheck map[string]any `yaml:"healthcheck"`
	Profiles    []string       `yaml:"profiles"`
	Entrypoint  any            `yaml:"entrypoint"`
	Command     any            `yaml:"command"`
	Environment any            `yaml:"environment"`
	Restart     string         `yaml:"restart"`
}

func load(t *testing.T) *composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	require.NoError(t, err)
	var f composeFile
	require.NoError(t, yaml.UnmarshalWithOptions(data, &f, yaml.Strict()), "docker-compose.yml uses a key this test does not know; add it to the service struct if it is valid Compose")
	require.NotEmpty(t, f.Services, "docker-compose.yml defines no services")
	return &f
}

func sortedNames(m map[string]service) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dependencies returns depends_on as service → condition (short form:
// service_started).
func dependencies(t *testing.T, name string, s service) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch d := s.DependsOn.(type) {
	case nil:
	case []any:
		for _, v := range d {
			out[fmt.Sprint(v)] = "service_started"
		}
	case map[string]any:
		for k, v := range d {
			cond := "service_started"
			if m, ok := v.(map[string]any); ok && m["condition"] != nil {
				cond = fmt.Sprint(m["condition"])
			}
			out[k] = cond
		}
	default:
		t.Errorf("%s: depends_on has an unexpected shape %T", name, d)
	}
	return out
}

func TestDependsOnExistingServicesWithHealthChecks(t *testing.T) {
	f := load(t)
	conditions := map[string]bool{"service_started": true, "service_healthy": true, "service_completed_successfully": true}
	for _, name := range sortedNames(f.Services) {
		for dep, cond := range dependencies(t, name, f.Services[name]) {
			target, ok := f.Services[dep]
			if !assert.True(t, ok, "%s depends on %q, which is not a service", name, dep) {
				continue
			}
			assert.True(t, conditions[cond], "%s: depends_on %s: unknown condition %q", name, dep, cond)
			assert.NotEqual(t, name, dep, "%s depends on itself", name)
			if cond == "service_healthy" {
				hc := target.Healthcheck
				if assert.NotNil(t, hc, "%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep) {
					assert.NotEqual(t, true, hc["disable"], "%s: healthcheck disabled", dep)
					assert.NotEmpty(t, hc["test"], "%s: healthcheck without test", dep)
				}
			}
			if cond == "service_completed_successfully" {
				assert.NotContains(t, []string{"always", "unless-stopped"}, target.Restart,
					"%s waits for %s to complete, but %s restarts", name, dep, dep)
			}
			// A service in a profile is not started by a plain `up`.
			if len(target.Profiles) > 0 {
				assert.NotEmpty(t, f.Services[name].Profiles, "%s (always started) depends on %s, which only runs with profile %v", name, dep, target.Profiles)
			}
		}
	}
	// And no cycles.
	visiting := map[string]int{}
	var visit func(string, []string)
	visit = func(n string, path []string) {
		switch visiting[n] {
		case 1:
			t.Errorf("depends_on cycle: %s", strings.Join(append(path, n), " → "))
			return
		case 2:
			return
		}
		visiting[n] = 1
		for dep := range dependencies(t, n, f.Services[n]) {
			if _, ok := f.Services[dep]; ok {
				visit(dep, append(path, n))
			}
		}
		visiting[n] = 2
	}
	for _, n := range sortedNames(f.Services) {
		visit(n, nil)
	}
}

// bindSource returns the host side of a volume entry when it is a bind
// mount of a repository path ("" for named volumes).
func bindSource(t *testing.T, svc string, v any) string {
	t.Helper()
	switch v := v.(type) {
	case string:
		src, _, ok := strings.Cut(v, ":")
		if !ok {
			return "" // anonymous volume
		}
		if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") || strings.HasPrefix(src, "~") {
			return src
		}
		return ""
	case map[string]any:
		if fmt.Sprint(v["type"]) == "bind" {
			return fmt.Sprint(v["source"])
		}
		return ""
	}
	t.Errorf("%s: volume entry of unexpected shape %T", svc, v)
	return ""
}

func TestMountedFilesExist(t *testing.T) {
	f := load(t)
	mounts := 0
	for _, name := range sortedNames(f.Services) {
		for _, v := range f.Services[name].Volumes {
			src := bindSource(t, name, v)
			if src == "" {
				if s, ok := v.(string); ok && strings.Contains(s, ":") {
					vol, _, _ := strings.Cut(s, ":")
					_, declared := f.Volumes[vol]
					assert.True(t, declared, "%s mounts named volume %q, which is not declared under volumes:", name, vol)
				}
				continue
			}
			mounts++
			assert.False(t, filepath.IsAbs(src) || strings.HasPrefix(src, "~"), "%s mounts %s: only paths inside the repository are portable", name, src)
			p := filepath.Join(repoRoot, src)
			assert.True(t, isWithin(t, p), "%s mounts %s, outside the repository", name, src)
			_, err := os.Stat(p)
			assert.NoError(t, err, "%s mounts %s, which does not exist in the repository", name, src)
		}
	}
	assert.Greater(t, mounts, 3, "expected the config files of HAProxy, PostgreSQL, Temporal and the worker to be mounted")
}

func isWithin(t *testing.T, p string) bool {
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	abs, err := filepath.Abs(p)
	require.NoError(t, err)
	rel, err := filepath.Rel(root, abs)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

var fromLine = regexp.MustCompile(`(?im)^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?`)

func TestBuildContextsAndTargetsExist(t *testing.T) {
	f := load(t)
	builds := 0
	for _, name := range sortedNames(f.Services) {
		s := f.Services[name]
		if s.Build == nil {
			assert.NotEmpty(t, s.Image, "%s has neither image nor build", name)
			continue
		}
		builds++
		ctx, dockerfile, target := "", "Dockerfile", ""
		switch b := s.Build.(type) {
		case string:
			ctx = b
		case map[string]any:
			ctx = fmt.Sprint(b["context"])
			if b["dockerfile"] != nil {
				dockerfile = fmt.Sprint(b["dockerfile"])
			}
			if b["target"] != nil {
				target = fmt.Sprint(b["target"])
			}
		default:
			t.Errorf("%s: build of unexpected shape %T", name, b)
			continue
		}
		dir := filepath.Join(repoRoot, ctx)
		assert.True(t, isWithin(t, dir), "%s: build context %s is outside the repository", name, ctx)
		st, err := os.Stat(dir)
		if !assert.NoError(t, err, "%s: build context %s", name, ctx) || !assert.True(t, st.IsDir()) {
			continue
		}
		df, err := os.ReadFile(filepath.Join(dir, dockerfile))
		if !assert.NoError(t, err, "%s: Dockerfile %s in context %s", name, dockerfile, ctx) {
			continue
		}
		if target != "" {
			var stages []string
			for _, m := range fromLine.FindAllStringSubmatch(string(df), -1) {
				stages = append(stages, m[2])
			}
			assert.Contains(t, stages, target, "%s: build target %q is not a stage of %s", name, target, dockerfile)
		}
	}
	assert.NotZero(t, builds, "the worker and the demo API are built from the Dockerfile")
}

var (
	// goBuildToDir is the Dockerfile's `go build … -o DIR/ ./pkg…`: with a
	// directory, go build names each binary after its package's folder.
	goBuildToDir = regexp.MustCompile(`go build [^\n&]*?-o (\S+/) ((?:\./\S+ *)+)`)
	copyFromOut  = regexp.MustCompile(`(?m)^COPY --from=build (\S+) `)
)

// TestDockerfileBinariesAreNamedAfterTheirFolders: every binary an image
// copies out of the build stage is built there from a main package whose
// folder has the binary's name, so the images run the same `rollbook` and
// `rollbook-worker` that `go install` gives.
func TestDockerfileBinariesAreNamedAfterTheirFolders(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	df := strings.ReplaceAll(string(data), "\\\n", " ")
	built := map[string]bool{}
	for _, m := range goBuildToDir.FindAllStringSubmatch(df, -1) {
		for _, pkg := range strings.Fields(m[2]) {
			main, err := os.ReadFile(filepath.Join(repoRoot, pkg, "main.go"))
			if assert.NoError(t, err, "Dockerfile builds %s", pkg) {
				assert.Regexp(t, `(?m)^package main$`, string(main), "Dockerfile builds %s", pkg)
			}
			built[m[1]+filepath.Base(pkg)] = true
		}
	}
	require.NotEmpty(t, built, "the Dockerfile builds its binaries with `go build -o DIR/ ./pkg…`")
	copies := copyFromOut.FindAllStringSubmatch(df, -1)
	require.NotEmpty(t, copies, "the images copy binaries from the build stage")
	for _, m := range copies {
		assert.True(t, built[m[1]], "Dockerfile copies %s, which its go build does not produce (built: %v)", m[1], built)
	}
	for _, bin := range []string{"rollbook", "rollbook-worker"} {
		assert.True(t, built["/out/"+bin], "the Dockerfile builds %s", bin)
	}
}

// pinned reports whether an image reference names an exact tag or digest.
func pinned(ref string) (bool, string) {
	if strings.Contains(ref, "@sha256:") {
		return true, ""
	}
	if strings.Contains(ref, "$") {
		return false, "uses a variable; pin the tag in the file"
	}
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if colon < slash+1 || colon == -1 {
		return false, "has no tag"
	}
	tag := ref[colon+1:]
	switch {
	case tag == "latest":
		return false, "uses latest"
	case tag == "" || tag == "stable" || tag == "edge" || tag == "main" || tag == "master":
		return false, "uses a moving tag " + tag
	}
	return true, ""
}

func TestImagesArePinned(t *testing.T) {
	f := load(t)
	for _, name := range sortedNames(f.Services) {
		s := f.Services[name]
		if s.Image == "" {
			continue
		}
		ok, why := pinned(s.Image)
		assert.True(t, ok, "%s: image %s %s", name, s.Image, why)
		if s.Build == nil {
			// Upstream images: a version, not just a major line.
			_, tag, _ := strings.Cut(s.Image[strings.LastIndex(s.Image, "/")+1:], ":")
			assert.Regexp(t, `^v?\d+\.\d+`, tag, "%s: upstream image %s should pin a version such as 1.2.3", name, s.Image)
		}
	}
	// The Dockerfile's base images too (stages refer to each other by name).
	df, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	stages := map[string]bool{}
	for _, m := range fromLine.FindAllStringSubmatch(string(df), -1) {
		if !stages[m[1]] {
			ok, why := pinned(m[1])
			assert.True(t, ok, "Dockerfile: FROM %s %s", m[1], why)
		}
		if m[2] != "" {
			stages[m[2]] = true
		}
	}
	assert.NotEmpty(t, stages)

	for ref, want := range map[string]bool{
		"postgres": false, "postgres:latest": false, "postgres:15.10": true, "localhost:5000/x": false,
		"localhost:5000/x:1.2": true, "haproxy@sha256:abc": true, "x:${TAG}": false,
	} {
		got, _ := pinned(ref)
		assert.Equal(t, want, got, ref)
	}
}

type hostPort struct{ ip, port, proto string }

func parsePort(t *testing.T, svc string, p any) (hostPort, bool) {
	t.Helper()
	switch p := p.(type) {
	case string:
		spec, proto, _ := strings.Cut(p, "/")
		if proto == "" {
			proto = "tcp"
		}
		parts := strings.Split(spec, ":")
		switch len(parts) {
		case 1:
			return hostPort{}, false // container port only: Docker picks a free host port
		case 2:
			return hostPort{"0.0.0.0", parts[0], proto}, true
		case 3:
			return hostPort{parts[0], parts[1], proto}, true
		}
	case map[string]any:
		if p["published"] == nil {
			return hostPort{}, false
		}
		ip, proto := "0.0.0.0", "tcp"
		if p["host_ip"] != nil {
			ip = fmt.Sprint(p["host_ip"])
		}
		if p["protocol"] != nil {
			proto = fmt.Sprint(p["protocol"])
		}
		return hostPort{ip, fmt.Sprint(p["published"]), proto}, true
	}
	t.Errorf("%s: port entry %v of unexpected shape", svc, p)
	return hostPort{}, false
}

func TestHostPortsDoNotClash(t *testing.T) {
	f := load(t)
	owner := map[hostPort]string{}
	for _, name := range sortedNames(f.Services) {
		for _, p := range f.Services[name].Ports {
			hp, ok := parsePort(t, name, p)
			if !ok {
				continue
			}
			assert.NotContains(t, hp.port, "-", "%s: port ranges are not checked; list ports one by one", name)
			assert.Equal(t, "127.0.0.1", hp.ip, "%s: host port %s should bind to 127.0.0.1 (admin interfaces)", name, hp.port)
			for other, who := range owner {
				sameIP := other.ip == hp.ip || other.ip == "0.0.0.0" || hp.ip == "0.0.0.0"
				if sameIP && other.port == hp.port && other.proto == hp.proto {
					t.Errorf("host port %s/%s is published by both %s and %s", hp.port, hp.proto, who, name)
				}
			}
			owner[hp] = name
		}
	}
	assert.NotEmpty(t, owner)
}

// TestStackShape: the services the README promises are there, wired the way
// the worker and the Web UI need.
func TestStackShape(t *testing.T) {
	f := load(t)
	for _, want := range []string{"temporal", "temporal-ui", "temporal-setup", "postgresql", "consul", "haproxy", "worker", "demo-stable", "demo-canary", "prometheus", "alertmanager"} {
		assert.Contains(t, f.Services, want)
	}
	assert.Equal(t, "hashicorp/consul:1.14.11", f.Services["consul"].Image, "same Consul as the dev stack")
	assert.True(t, strings.HasPrefix(f.Services["haproxy"].Image, "haproxy:2.6."), "HAProxy 2.6 like the dev stack")

	// The one-shot registers every search attribute the workflow upserts.
	var script string
	for _, v := range f.Services["temporal-setup"].Volumes {
		if src := bindSource(t, "temporal-setup", v); strings.HasSuffix(src, ".sh") {
			b, err := os.ReadFile(filepath.Join(repoRoot, src))
			require.NoError(t, err)
			script = string(b)
		}
	}
	require.NotEmpty(t, script, "temporal-setup mounts its registration script")
	for _, sa := range devstack.SearchAttributes {
		assert.Regexp(t, `\b`+sa+`\b`, script, "temporal-setup does not register %s", sa)
	}
	assert.Contains(t, script, "--type Keyword")
	assert.Contains(t, dependencies(t, "worker", f.Services["worker"]), "temporal-setup")

	// The worker's mounted configuration is a valid worker configuration.
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy/compose/worker.yaml"))
	require.NoError(t, err)
	cfg, err := worker.ParseConfig("deploy/compose/worker.yaml", data)
	require.NoError(t, err)
	assert.Equal(t, "haproxy", cfg.Routers["edge"].Driver)
	assert.Equal(t, "tcp://haproxy:9999", cfg.Routers["edge"].Address)
	for _, host := range []string{"haproxy", "demo-stable", "demo-canary"} {
		found := false
		for _, e := range cfg.Endpoints {
			found = found || strings.Contains(e.URL, "//"+host+":")
		}
		assert.True(t, found || host != "haproxy", "an endpoint points at %s", host)
	}

	// HAProxy has the dev stack's shape: backend payments_api, servers
	// stable and canary, runtime API at level admin on the worker's port.
	hc, err := os.ReadFile(filepath.Join(repoRoot, "deploy/compose/haproxy/haproxy.cfg"))
	require.NoError(t, err)
	h := string(hc)
	assert.Contains(t, h, "backend "+devstack.Backend)
	assert.Regexp(t, `(?m)^\s*server `+devstack.StableServer+` demo-stable:8080\b`, h)
	assert.Regexp(t, `(?m)^\s*server `+devstack.CanaryServer+` demo-canary:8080\b`, h)
	assert.Regexp(t, `(?m)^\s*stats socket ipv4@0\.0\.0\.0:9999 .*level admin`, h)
	assert.Contains(t, h, "option redispatch")
	// Writes are replayed on another server only with an Idempotency-Key, like the dev stack.
	assert.Regexp(t, `(?m)^\s*acl idempotent_write req\.hdr\(Idempotency-Key\) -m len 1:$`, h)
	assert.Regexp(t, `(?m)^\s*http-request disable-l7-retry if !METH_GET !METH_HEAD !idempotent_write$`, h)

	// The demo API has its database, with the dev stack's base schema.
	for _, name := range []string{"demo-stable", "demo-canary"} {
		assert.Contains(t, dependencies(t, name, f.Services[name]), "postgresql")
		assert.Contains(t, fmt.Sprint(f.Services[name].Environment), devstack.EnvDemoDSN, name)
	}
	initSQL, err := os.ReadFile(filepath.Join(repoRoot, "deploy/compose/postgres/init.sql"))
	require.NoError(t, err)
	assert.Contains(t, string(initSQL), devstack.DemoSchema, "init.sql holds internal/devstack/demoschema.sql verbatim")
}

// promConfig is what TestMonitoringShape reads of prometheus.yml.
type promConfig struct {
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []promStatic `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string       `yaml:"job_name"`
		StaticConfigs []promStatic `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type promStatic struct {
	Targets []string          `yaml:"targets"`
	Labels  map[string]string `yaml:"labels"`
}

// runTool runs one of the monitoring packages' checkers; a missing one is a failure that
// says what to install (scripts/tools.sh installs both), never a skip.
func runTool(t *testing.T, pkg, tool string, args ...string) {
	t.Helper()
	path, err := exec.LookPath(tool)
	require.NoError(t, err, "%s is needed to check the compose monitoring files: run `make tools` or `apt-get install -y %s`", tool, pkg)
	out, err := exec.Command(path, args...).CombinedOutput()
	assert.NoError(t, err, "%s %s:\n%s", tool, strings.Join(args, " "), out)
}

// TestMonitoringShape: Prometheus and Alertmanager are the dev stack's versions, their
// configurations pass Prometheus's and Alertmanager's own checkers, Prometheus scrapes the
// same jobs with the same labels as the dev stack (so the example runbook's PromQL and the
// rules work on both), each target is a port its service really serves, and Alertmanager
// reaches the alert receiver with the token both mount.
func TestMonitoringShape(t *testing.T) {
	f := load(t)
	for _, want := range []string{"prometheus", "alertmanager", "alert-receiver"} {
		require.Contains(t, f.Services, want)
	}
	assert.True(t, strings.HasPrefix(f.Services["prometheus"].Image, "prom/prometheus:v2.42."), "Prometheus 2.42 like the dev stack (Debian's)")
	assert.True(t, strings.HasPrefix(f.Services["alertmanager"].Image, "prom/alertmanager:v0.25."), "Alertmanager 0.25 like the dev stack (Debian's)")

	mounted := func(svc, target string) string {
		for _, v := range f.Services[svc].Volumes {
			if s, ok := v.(string); ok {
				parts := strings.Split(s, ":")
				if len(parts) >= 2 && parts[1] == target {
					return bindSource(t, svc, v)
				}
			}
		}
		t.Fatalf("%s does not mount anything at %s", svc, target)
		return ""
	}
	promFile := filepath.Join(repoRoot, mounted("prometheus", "/etc/prometheus/prometheus.yml"))
	amFile := filepath.Join(repoRoot, mounted("alertmanager", "/etc/alertmanager/alertmanager.yml"))
	runTool(t, "prometheus", "promtool", "check", "config", "--syntax-only", promFile)
	runTool(t, "prometheus-alertmanager", "amtool", "check-config", amFile)
	assert.Equal(t, "deploy/monitoring/rules", strings.TrimPrefix(mounted("prometheus", "/etc/prometheus/rules"), "./"))

	data, err := os.ReadFile(promFile)
	require.NoError(t, err)
	var pc promConfig
	require.NoError(t, yaml.Unmarshal(data, &pc))
	assert.Equal(t, []string{"/etc/prometheus/rules/*.yml"}, pc.RuleFiles)
	jobs := map[string][]promStatic{}
	for _, sc := range pc.ScrapeConfigs {
		jobs[sc.JobName] = sc.StaticConfigs
	}
	assert.Equal(t, []promStatic{{Targets: []string{"demo-stable:8080"}, Labels: map[string]string{"subset": devstack.StableServer}},
		{Targets: []string{"demo-canary:8080"}, Labels: map[string]string{"subset": devstack.CanaryServer}}}, jobs[devstack.JobDemoAPI])

	// HAProxy's exporter: the port of the frontend that serves it.
	hc, err := os.ReadFile(filepath.Join(repoRoot, "deploy/compose/haproxy/haproxy.cfg"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^frontend prometheus\n\s+bind :(\d+)\n(?:\s+.*\n)*?\s+http-request use-service prometheus-exporter if \{ path /metrics \}`).FindSubmatch(hc)
	require.NotNil(t, m, "haproxy.cfg has a frontend prometheus with the exporter on /metrics")
	assert.Equal(t, []promStatic{{Targets: []string{"haproxy:" + string(m[1])}}}, jobs[devstack.JobHAProxy])

	// The worker: its metrics port, and its prometheus server is this one.
	wc, err := os.ReadFile(filepath.Join(repoRoot, "deploy/compose/worker.yaml"))
	require.NoError(t, err)
	cfg, err := worker.ParseConfig("deploy/compose/worker.yaml", wc)
	require.NoError(t, err)
	_, metricsPort, _ := strings.Cut(cfg.Metrics.Listen, ":")
	assert.Equal(t, []promStatic{{Targets: []string{"worker:" + metricsPort}}}, jobs[devstack.JobWorker])
	assert.Equal(t, "http://prometheus:9090", cfg.Prometheus["default"].URL)

	require.Len(t, pc.Alerting.Alertmanagers, 1)
	assert.Equal(t, []promStatic{{Targets: []string{"alertmanager:9093"}}}, pc.Alerting.Alertmanagers[0].StaticConfigs)

	// Alertmanager → the receiver, with the token file the receiver reads.
	am, err := os.ReadFile(amFile)
	require.NoError(t, err)
	assert.Contains(t, string(am), "url: http://alert-receiver:9095/alerts")
	assert.Contains(t, fmt.Sprint(f.Services["alert-receiver"].Command), "0.0.0.0:9095")
	assert.Contains(t, string(am), "credentials_file: /etc/alertmanager/rollbook-token")
	assert.Equal(t, mounted("alertmanager", "/etc/alertmanager/rollbook-token"), mounted("alert-receiver", "/etc/rollbook/alert-token"))
	assert.Contains(t, fmt.Sprint(f.Services["alert-receiver"].Environment), "ROLLBOOK_ALERT_RECEIVER_TOKEN_FILE:/etc/rollbook/alert-token")
}
