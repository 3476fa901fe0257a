package devstack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	_ "github.com/jackc/pgx/v5/stdlib"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestStack starts four stacks at once in one process, as parallel test packages do (each
// must win its ports or move to others), checks that each answers on addresses of its own,
// checks every component of the first one for real, stops them all and checks that their
// processes are gone. A missing tool is a failure that says what to run, never a skip.
func TestStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	stacks := make([]*Stack, len(dirs))
	errs := make([]error, len(dirs))
	start := time.Now()
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Go(func() {
			// Four stacks at once on a shared 2-core machine take longer than one.
			stacks[i], errs[i] = Start(ctx, Options{Dir: dir, Log: testLog{t}, RemoveOnStop: true, Timeout: 3 * time.Minute})
		})
	}
	wg.Wait()
	for i, s := range stacks {
		if s != nil {
			t.Cleanup(func() { _ = s.Stop() })
		}
		if errs[i] != nil {
			t.Fatalf("stack %d: %v", i, errs[i])
		}
	}
	t.Logf("%d stacks up in %v", len(stacks), time.Since(start).Round(time.Millisecond))
	s, other := stacks[0], stacks[1]

	seen := map[int]int{} // port → stack
	for i, st := range stacks {
		if err := st.Check(ctx); err != nil {
			t.Fatalf("stack %d: %v", i, err)
		}
		pt := st.portsNow()
		for _, port := range pt.all() {
			if port == pt.TemporalUI && st.WebUI == "" {
				// Chosen but never bound by a headless stack: another stack may
				// well listen on it.
				continue
			}
			if j, ok := seen[port]; ok {
				t.Fatalf("port %d is used by stacks %d and %d: %v / %v", port, j, i, stacks[j].Env(), st.Env())
			}
			seen[port] = i
		}
		// Each stack's demo API is its own: the canary of stack i says v2 only there.
		if err := post(st.DemoCanaryURL+"/admin/bad", `{"errorRate":1}`); err != nil {
			t.Fatal(err)
		}
		for j, other := range stacks {
			want := 200
			if j == i {
				want = 500
			}
			getVersion(t, other.DemoCanaryURL+"/api/payments", want)
		}
		if err := post(st.DemoCanaryURL+"/admin/good", ""); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("env", func(t *testing.T) {
		env, err := ReadEnv(filepath.Join(s.Dir, "env"))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{EnvTemporalAddress, EnvTemporalNamespace, EnvConsulHTTPAddr, EnvPGDSN,
			EnvHAProxySocket, EnvHAProxyURL, EnvDemoStableURL, EnvDemoCanaryURL, EnvStackDir} {
			if env[k] == "" || env[k] != s.Env()[k] {
				t.Errorf("%s: file has %q, Env() has %q", k, env[k], s.Env()[k])
			}
		}
		if env[EnvWebUI] != "" {
			t.Errorf("headless stack has %s=%q", EnvWebUI, env[EnvWebUI])
		}
		if !regexp.MustCompile(`^postgres://rollbook:[0-9a-f]+@127\.0\.0\.1:\d+/payments\?sslmode=disable$`).MatchString(s.PGDSN) {
			t.Errorf("DSN %q", s.PGDSN)
		}
	})

	t.Run("temporal", func(t *testing.T) {
		c, err := client.DialContext(ctx, client.Options{HostPort: s.TemporalAddress, Namespace: Namespace, Logger: silentSDKLogger})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: Namespace}); err != nil {
			t.Fatal(err)
		}
		sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: Namespace})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range SearchAttributes {
			if got, ok := sa.GetCustomAttributes()[name]; !ok || got != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
				t.Errorf("search attribute %s: %v (registered: %v), want Keyword", name, got, ok)
			}
		}
	})

	t.Run("consul", func(t *testing.T) {
		c, err := consul.NewClient(&consul.Config{Address: s.ConsulHTTPAddr})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.KV().Put(&consul.KVPair{Key: "rollbook/devstack-test", Value: []byte("hello")}, nil); err != nil {
			t.Fatal(err)
		}
		kv, _, err := c.KV().Get("rollbook/devstack-test", nil)
		if err != nil || kv == nil || string(kv.Value) != "hello" {
			t.Fatalf("get: %v %v", kv, err)
		}
		// The other stack's agent is a different cluster.
		oc, _ := consul.NewClient(&consul.Config{Address: other.ConsulHTTPAddr})
		if kv, _, err := oc.KV().Get("rollbook/devstack-test", nil); err != nil || kv != nil {
			t.Fatalf("second stack sees the key: %v %v", kv, err)
		}
	})

	t.Run("postgres", func(t *testing.T) {
		db, err := sql.Open("pgx", s.PGDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var one int
		var name string
		if err := db.QueryRowContext(ctx, "SELECT 1, current_database()").Scan(&one, &name); err != nil {
			t.Fatal(err)
		}
		if one != 1 || name != DefaultDBName {
			t.Fatalf("got %d %q", one, name)
		}
		// Only TCP on 127.0.0.1 with the password: a wrong password is refused.
		bad := strings.Replace(s.PGDSN, "rollbook:", "rollbook:x", 1)
		db2, _ := sql.Open("pgx", bad)
		defer db2.Close()
		if err := db2.PingContext(ctx); err == nil {
			t.Fatal("wrong password accepted")
		}
	})

	t.Run("haproxy", func(t *testing.T) {
		out, err := s.HAProxyCommand("show servers state " + Backend)
		if err != nil {
			t.Fatal(err)
		}
		weights := serverWeights(t, out)
		if weights[StableServer] != "256" || weights[CanaryServer] != "0" {
			t.Fatalf("weights %v, want stable 256 canary 0:\n%s", weights, out)
		}
		for range 4 {
			if v := getVersion(t, s.HAProxyURL+"/api/payments", 200); v != "v1" {
				t.Fatalf("frontend answered from %q, want v1", v)
			}
		}
		// Both weights in one write, as the traffic router does.
		if _, err := s.HAProxyCommand(fmt.Sprintf("set server %s/%s weight 0; set server %s/%s weight 256",
			Backend, StableServer, Backend, CanaryServer)); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if v := getVersion(t, s.HAProxyURL+"/api/payments", 200); v != "v2" {
				t.Fatalf("after switching, frontend answered from %q, want v2", v)
			}
		}
	})

	t.Run("demo bad mode", func(t *testing.T) {
		resp, err := http.Post(s.DemoCanaryURL+"/admin/bad", "application/json", strings.NewReader(`{"errorRate":1}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		getVersion(t, s.DemoCanaryURL+"/api/payments", 500)
		getVersion(t, s.DemoCanaryURL+"/healthz", 200)
		getVersion(t, s.DemoStableURL+"/api/payments", 200)
		resp, err = http.Post(s.DemoCanaryURL+"/admin/good", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		getVersion(t, s.DemoCanaryURL+"/api/payments", 200)
	})

	t.Run("release", func(t *testing.T) {
		// The release command, run the way the exec release driver runs it: from the stack
		// directory, with the versions table in its environment only.
		rel := func(env []string, args ...string) (string, error) {
			cmd := exec.Command(filepath.Join(s.Dir, "bin", "demo-release"), args...)
			cmd.Dir = s.Dir
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
			out, err := cmd.CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		table := []string{EnvReleaseFlagsPrefix + "v3=-error-rate=1 -write-failure=before-commit"}
		// The runbooks' order: the canary is released while stable takes all traffic.
		if _, err := s.HAProxyCommand(fmt.Sprintf("set server %s/%s weight 256; set server %s/%s weight 0",
			Backend, StableServer, Backend, CanaryServer)); err != nil {
			t.Fatal(err)
		}
		if v, err := rel(nil, "current", CanaryServer); err != nil || v != "v2" {
			t.Fatalf("current canary: %q, %v; want v2", v, err)
		}
		before, err := NewReleaseClient(s.Dir).Current(ctx, CanaryServer)
		if err != nil {
			t.Fatal(err)
		}
		// Clients of the frontend (all on stable) notice nothing while the canary is replaced.
		stopLoad := make(chan struct{})
		var failed, sent int
		var loadDone sync.WaitGroup
		loadDone.Go(func() {
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				sent++
				if err := httpOK(ctx, s.HAProxyURL+"/api/payments"); err != nil {
					failed++
				}
			}
		})
		out, err := rel(table, "deploy", CanaryServer, "v3", "key-1")
		close(stopLoad)
		loadDone.Wait()
		if err != nil {
			t.Fatalf("deploy v3: %v: %s", err, out)
		}
		if failed > 0 || sent == 0 {
			t.Fatalf("frontend during the canary's replacement: %d of %d requests failed", failed, sent)
		}
		after, err := NewReleaseClient(s.Dir).Current(ctx, CanaryServer)
		if err != nil || after.Version != "v3" || after.PID == before.PID || after.Key != "key-1" {
			t.Fatalf("canary after deploy: %+v (%v), before pid %d", after, err, before.PID)
		}
		// v3's behaviour comes from the table: every /api request fails; /healthz answers v3.
		getVersion(t, s.DemoCanaryURL+"/api/payments", 500)
		if v := getVersion(t, s.DemoCanaryURL+"/healthz", 200); v != "v3" {
			t.Fatalf("canary /healthz from %q", v)
		}
		if v := getVersion(t, s.DemoStableURL+"/api/payments", 200); v != "v1" {
			t.Fatalf("stable answered from %q, want v1 (untouched)", v)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := rel(nil, "health", CanaryServer)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("health of the new canary: %v: %s", err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// The same deploy again is a no-op (a retried activity): same process.
		if out, err := rel(table, "deploy", CanaryServer, "v3", "key-1"); err != nil {
			t.Fatalf("deploy again: %v: %s", err, out)
		}
		if again, _ := NewReleaseClient(s.Dir).Current(ctx, CanaryServer); again.PID != after.PID {
			t.Fatalf("a repeated deploy restarted the instance: pid %d → %d", after.PID, again.PID)
		}
		// Bad input changes nothing.
		for _, c := range []struct {
			env  []string
			args []string
			want string
		}{
			{nil, []string{"deploy", "blue", "v4"}, `unknown target "blue"`},
			{nil, []string{"deploy", CanaryServer, "v4;reboot"}, "not allowed"},
			{[]string{EnvReleaseFlagsPrefix + "v4=-listen=127.0.0.1:1"}, []string{"deploy", CanaryServer, "v4"}, `flag "-listen=127.0.0.1:1"`},
		} {
			out, err := rel(c.env, c.args...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("%v: %v: %s; want an error with %q", c.args, err, out, c.want)
			}
		}
		if v, _ := rel(nil, "current", CanaryServer); v != "v3" {
			t.Fatalf("after refused deploys the canary runs %q", v)
		}
		if b, err := os.ReadFile(filepath.Join(s.Dir, "release", CanaryServer+".json")); err != nil || !strings.Contains(string(b), `"v3"`) {
			t.Fatalf("release state: %s, %v", b, err)
		}
		// Back to v2, healthy again.
		if out, err := rel(nil, "deploy", CanaryServer, "v2"); err != nil {
			t.Fatalf("deploy v2: %v: %s", err, out)
		}
		getVersion(t, s.DemoCanaryURL+"/api/payments", 200)
	})

	t.Run("attach", func(t *testing.T) {
		a, err := Attach(filepath.Join(s.Dir, "env"))
		if err != nil {
			t.Fatal(err)
		}
		if !a.Attached || a.PGDSN != s.PGDSN || len(a.PIDs()) != 7 { // temporal, consul, postgres, demo-supervisor, haproxy, alertmanager, prometheus
			t.Fatalf("attached %+v, pids %v", a.Env(), a.PIDs())
		}
		if _, err := Start(ctx, Options{Dir: s.Dir}); !errors.Is(err, ErrAlreadyRunning) {
			t.Fatalf("second Start in the same dir: %v, want ErrAlreadyRunning", err)
		}
	})

	var pids []int
	for _, st := range stacks {
		pids = append(pids, mapValues(st.PIDs())...)
	}
	if len(pids) != 7*len(stacks) {
		t.Fatalf("pids %v, want 7 per stack", pids)
	}
	// The demo API instances are the release supervisor's children: Stop ends them too.
	for _, st := range stacks {
		for _, target := range []string{StableServer, CanaryServer} {
			ts, err := NewReleaseClient(st.Dir).Current(ctx, target)
			if err != nil || ts.PID <= 0 {
				t.Fatalf("%s: %+v, %v", target, ts, err)
			}
			pids = append(pids, ts.PID)
		}
	}
	stopStart := time.Now()
	for _, st := range stacks {
		if err := st.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("all stopped in %v", time.Since(stopStart).Round(time.Millisecond))
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	for _, dir := range dirs {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("RemoveOnStop left %s", dir)
		}
	}
	for _, st := range stacks {
		if st.PGDir != "" {
			if _, err := os.Stat(st.PGDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("RemoveOnStop left the PostgreSQL dir %s", st.PGDir)
			}
		}
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func serverWeights(t *testing.T, state string) map[string]string {
	t.Helper()
	w := map[string]string{}
	for _, line := range strings.Split(state, "\n") {
		f := strings.Fields(line)
		// be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...
		if len(f) > 7 && f[1] == Backend {
			w[f[3]] = f[7]
		}
	}
	return w
}

func getVersion(t *testing.T, url string, wantStatus int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, wantStatus)
	}
	return resp.Header.Get("X-Rollbook-Version")
}

func post(url, body string) error {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}

func mapValues(m map[string]int) []int {
	var v []int
	for _, x := range m {
		v = append(v, x)
	}
	return v
}

func TestMissingToolSaysWhatToRun(t *testing.T) {
	t.Setenv("ROLLBOOK_TEMPORAL_BIN", filepath.Join(t.TempDir(), "nope", "temporal"))
	t.Setenv("ROLLBOOK_HAPROXY_BIN", filepath.Join(t.TempDir(), "nope", "haproxy"))
	t.Setenv("ROLLBOOK_ALERTMANAGER_BIN", filepath.Join(t.TempDir(), "nope", "prometheus-alertmanager"))
	_, err := Start(context.Background(), Options{Dir: t.TempDir()})
	if !errors.Is(err, ErrMissingTool) {
		t.Fatalf("err %v, want ErrMissingTool", err)
	}
	for _, want := range []string{"Temporal CLI v1.5.1", "make tools", "apt-get install -y haproxy", "apt-get install -y prometheus-alertmanager"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestAttachWithoutStack(t *testing.T) {
	if _, err := Attach(filepath.Join(t.TempDir(), "env")); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("err %v, want ErrNotRunning", err)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Load: err %v, want ErrNotRunning", err)
	}
}

func TestEnvFileRoundTrip(t *testing.T) {
	s := &Stack{Dir: "/tmp/x", TemporalAddress: "127.0.0.1:1", PGDSN: "postgres://a:b@127.0.0.1:2/p?sslmode=disable",
		WebUI: "http://127.0.0.1:3", HAProxySocket: "/tmp/with space/h.sock"}
	path := filepath.Join(t.TempDir(), "env")
	if err := s.WriteEnv(path); err != nil {
		t.Fatal(err)
	}
	env, err := ReadEnv(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range s.Env() {
		if env[k] != v {
			t.Errorf("%s: read %q, wrote %q", k, env[k], v)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %v, want 0600 (it holds the database password)", fi.Mode())
	}
}

// The pinned versions live in two places: here and scripts/tools.sh, which builds them.
func TestToolVersionsMatchScript(t *testing.T) {
	script, err := os.ReadFile("../../scripts/tools.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TEMPORAL_VERSION=" + TemporalCLIVersion, "CONSUL_VERSION=" + ConsulVersion, "PG_MAJOR=" + PostgresMajor} {
		if !strings.Contains(string(script), want+"\n") {
			t.Errorf("scripts/tools.sh does not set %s", want)
		}
	}
	mod, err := os.ReadFile("../../tools/consul/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "github.com/hashicorp/consul "+ConsulVersion) {
		t.Errorf("tools/consul/go.mod does not require consul %s", ConsulVersion)
	}
}

// TestRestartComponents stops and starts each stateful component of one stack and checks
// that it comes back on the same address with its data (a workflow, a Consul key and config
// entry, a table), that the pids file follows, and that HAProxy's runtime weights survive a
// restart only when they were saved to the server-state-file first.
func TestRestartComponents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Dir: t.TempDir(), Log: testLog{t}, RemoveOnStop: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })

	restart := func(name string, stopStart bool) {
		t.Helper()
		before := s.PIDs()[name]
		begin := time.Now()
		if stopStart {
			if err := s.StopComponent(name); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.PIDs()[name]; ok {
				t.Fatalf("%s still listed after StopComponent: %v", name, s.PIDs())
			}
			if err := syscall.Kill(before, 0); !errors.Is(err, syscall.ESRCH) {
				t.Fatalf("%s (pid %d) still exists after StopComponent", name, before)
			}
			if err := s.StartComponent(ctx, name); err != nil {
				t.Fatal(err)
			}
		} else if err := s.Restart(ctx, name); err != nil {
			t.Fatal(err)
		}
		after := s.PIDs()[name]
		if after == 0 || after == before {
			t.Fatalf("%s: pid %d before, %d after the restart", name, before, after)
		}
		onDisk, err := readPids(filepath.Join(s.Dir, "pids"))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range onDisk {
			found = found || (p.name == name && p.pid == after && p.alive())
		}
		if !found || len(onDisk) != 7 {
			t.Fatalf("pids file after restarting %s: %d entries, new pid %d listed and alive: %v", name, len(onDisk), after, found)
		}
		t.Logf("%s restarted in %v (pid %d → %d)", name, time.Since(begin).Round(time.Millisecond), before, after)
	}

	t.Run("unknown", func(t *testing.T) {
		if err := s.StopComponent("demo-stable"); !errors.Is(err, ErrUnknownComponent) {
			t.Fatalf("err %v, want ErrUnknownComponent", err)
		}
		if err := s.StartComponent(ctx, ComponentConsul); err == nil || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("starting a running component: %v", err)
		}
	})

	t.Run("temporal", func(t *testing.T) {
		c, err := client.DialContext(ctx, client.Options{HostPort: s.TemporalAddress, Namespace: Namespace, Logger: silentSDKLogger})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// No worker polls this queue: the workflow just waits in the server's database.
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "devstack-restart", TaskQueue: "nobody"}, "Nothing")
		if err != nil {
			t.Fatal(err)
		}
		restart(ComponentTemporal, false)
		d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		if err != nil {
			t.Fatal(err)
		}
		if st := d.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("workflow after the restart: %v, want running", st)
		}
	})

	t.Run("consul", func(t *testing.T) {
		c, err := consul.NewClient(&consul.Config{Address: s.ConsulHTTPAddr})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.KV().Put(&consul.KVPair{Key: "rollbook/restart", Value: []byte("kept")}, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ConfigEntries().Set(&consul.ServiceConfigEntry{Kind: consul.ServiceDefaults, Name: "restart-svc", Protocol: "http"}, nil); err != nil {
			t.Fatal(err)
		}
		restart(ComponentConsul, true)
		kv, _, err := c.KV().Get("rollbook/restart", nil)
		if err != nil || kv == nil || string(kv.Value) != "kept" {
			t.Fatalf("key after the restart: %v %v (a -dev agent would have lost it)", kv, err)
		}
		e, _, err := c.ConfigEntries().Get(consul.ServiceDefaults, "restart-svc", nil)
		if err != nil || e.(*consul.ServiceConfigEntry).Protocol != "http" {
			t.Fatalf("config entry after the restart: %v %v", e, err)
		}
	})

	t.Run("postgres", func(t *testing.T) {
		db, err := sql.Open("pgx", s.PGDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)"); err != nil {
			t.Fatal(err)
		}
		dsn := s.PGDSN
		restart(ComponentPostgres, true)
		if s.PGDSN != dsn {
			t.Fatalf("DSN changed: %s → %s", dsn, s.PGDSN)
		}
		var v int
		// The pool's old connections died with the server; database/sql opens new ones.
		if err := db.QueryRowContext(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 7 {
			t.Fatalf("after the restart: %d %v", v, err)
		}
	})

	t.Run("haproxy", func(t *testing.T) {
		set := func(stable, canary int) {
			t.Helper()
			if _, err := s.HAProxyCommand(fmt.Sprintf("set server %s/%s weight %d; set server %s/%s weight %d",
				Backend, StableServer, stable, Backend, CanaryServer, canary)); err != nil {
				t.Fatal(err)
			}
		}
		want := func(stable, canary string) {
			t.Helper()
			out, err := s.HAProxyCommand("show servers state " + Backend)
			if err != nil {
				t.Fatal(err)
			}
			if w := serverWeights(t, out); w[StableServer] != stable || w[CanaryServer] != canary {
				t.Fatalf("weights %v, want stable %s canary %s", w, stable, canary)
			}
		}
		// Without saving: back at the configuration's weights.
		set(50, 50)
		restart(ComponentHAProxy, true)
		want("256", "0")
		// Restart saves the state file first: the weights survive.
		set(30, 70)
		restart(ComponentHAProxy, false)
		want("30", "70")
		getVersion(t, s.HAProxyURL+"/healthz", 200)
	})

	t.Run("haproxy port held", func(t *testing.T) {
		if err := s.StopComponent(ComponentHAProxy); err != nil {
			t.Fatal(err)
		}
		pt, env := s.portsNow(), s.Env()
		im := occupy(t, pt.HAProxyStats)
		begin := time.Now()
		err := s.StartComponent(ctx, ComponentHAProxy)
		want := fmt.Sprintf("port %d is taken by pid %d", pt.HAProxyStats, os.Getpid())
		if !errors.Is(err, ErrPortTaken) || !strings.Contains(err.Error(), want) {
			t.Fatalf("restart with the stats port held for good: %v; want ErrPortTaken saying %q", err, want)
		}
		t.Logf("gave up after %v: %v", time.Since(begin).Round(time.Millisecond), err)
		if s.portsNow() != pt || !maps.Equal(s.Env(), env) {
			t.Fatalf("a restart moved the stack: ports %+v → %+v", pt, s.portsNow())
		}
		if pid, ok := s.PIDs()[ComponentHAProxy]; ok {
			t.Fatalf("the failed restart left haproxy (pid %d) in the stack", pid)
		}
		// Held for a moment only, like another stack's freePorts probe: the restart
		// waits and gets the same port.
		go func() { time.Sleep(time.Second); im.srv.Close() }()
		if err := s.StartComponent(ctx, ComponentHAProxy); err != nil {
			t.Fatal(err)
		}
		if s.portsNow() != pt || !maps.Equal(s.Env(), env) {
			t.Fatalf("a restart moved the stack: ports %+v → %+v", pt, s.portsNow())
		}
		if body, err := httpGet(ctx, s.HAProxyStatsURL); err != nil || !strings.Contains(string(body), "Statistics Report") {
			t.Fatalf("HAProxy stats page after the restart: %v %.200q", err, body)
		}
		getVersion(t, s.HAProxyURL+"/healthz", 200)
	})

	// What `stack restart` does: a Stack read back from the directory by another process.
	// Start's options are not there: the restart must find what it needs elsewhere (the
	// database of ROLLBOOK_PG_DSN, whether the Web UI runs).
	var loaded *Stack
	t.Run("postgres from Load", func(t *testing.T) {
		var err error
		if loaded, err = Load(s.Dir); err != nil {
			t.Fatal(err)
		}
		before := loaded.PIDs()[ComponentPostgres]
		if err := loaded.Restart(ctx, ComponentPostgres); err != nil {
			t.Fatal(err)
		}
		if after := loaded.PIDs()[ComponentPostgres]; after == before || after == 0 || loaded.PGDSN != s.PGDSN {
			t.Fatalf("pid %d → %d, DSN %s → %s", before, after, s.PGDSN, loaded.PGDSN)
		}
		if err := pgPing(ctx, s.PGDSN); err != nil {
			t.Fatal(err)
		}
	})
	if loaded != nil {
		// The new postgres is in loaded's list only: stop it with the rest (before s.Stop,
		// which removes the directory).
		t.Cleanup(func() { _ = loaded.Stop() })
	}

	if err := s.Check(ctx); err != nil {
		t.Fatalf("after the restarts: %v", err)
	}
	log, err := os.ReadFile(filepath.Join(s.Dir, "logs", "consul.log"))
	if err != nil || !strings.Contains(string(log), "consul started again") {
		t.Errorf("consul.log does not keep the first run's log with a restart marker (%v)", err)
	}
}
