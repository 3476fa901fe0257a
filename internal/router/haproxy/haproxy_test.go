package haproxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rollbook/rollbook/internal/router"
)

// Answers recorded from HAProxy 2.6's runtime API.
const stateHeader = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"

func stateLines(stableW, canaryW, stableOp, stableAdmin int) string {
	return stateHeader +
		"3 payments_api 1 stable 127.0.0.1 " + itoa(stableOp) + " " + itoa(stableAdmin) + " " + itoa(stableW) + " 256 4 1 0 2 0 0 0 0 - 18081 - 0 0 - - 0\n" +
		"3 payments_api 2 canary 127.0.0.1 2 0 " + itoa(canaryW) + " 0 4 1 0 2 0 0 0 0 - 18082 - 0 0 - - 0\n\n"
}

func itoa(i int) string { return strconv.Itoa(i) }

const statAnswer = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,\n" +
	"payments_api,stable,0,0,0,0,,120,0,0,,0,,0,0,0,0,UP,50,1,0,,,4,,,1,3,1,,0,,2,0,,0,,,,0,110,0,0,7,0,,,,0,0,0,,,,,-1,,,0,0,12,15,\n" +
	"payments_api,canary,0,0,0,0,,30,0,0,,0,,0,0,0,0,MAINT,50,1,0,,,4,,,1,3,2,,0,,2,0,,0,,,,0,27,0,0,3,0,,,,0,0,0,,,,,-1,,,0,0,,,\n\n"

// fakeAPI serves canned answers on a unix socket and records the commands
// it received (one line per connection).
type fakeAPI struct {
	mu     sync.Mutex
	lines  []string
	answer func(line string) string
}

func startFake(t *testing.T, answer func(string) string) (*fakeAPI, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &fakeAPI{answer: answer}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			line = strings.TrimSuffix(line, "\n")
			f.mu.Lock()
			f.lines = append(f.lines, line)
			f.mu.Unlock()
			_, _ = c.Write([]byte(f.answer(line)))
			c.Close()
		}
	}()
	return f, path
}

var subsets = []string{"stable", "canary"}

func TestWeightsAndHealth(t *testing.T) {
	_, path := startFake(t, func(string) string { return stateLines(256, 0, 0, 1) })
	r, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.Weights(context.Background(), "payments_api", subsets)
	if err != nil {
		t.Fatal(err)
	}
	if st.Weights["stable"] != 100 || st.Raw["stable"] != 256 || st.Initial["stable"] != 256 {
		t.Errorf("state = %+v", st)
	}
	if st.Health["stable"].State != router.StateMaint || st.Health["canary"].State != router.StateUp {
		t.Errorf("health = %+v", st.Health)
	}
	_, err = r.Weights(context.Background(), "payments_api", []string{"stable", "blue"})
	if !errors.Is(err, router.ErrNotFound) {
		t.Errorf("missing server: %v, want ErrNotFound", err)
	}
}

func TestSetWeightsIsOneWrite(t *testing.T) {
	f, path := startFake(t, func(line string) string {
		if strings.Contains(line, "weight 300") {
			return "Absolute weight can only be between 0 and 256 inclusive.\n\n" + stateLines(90, 10, 2, 0)
		}
		return "\n\n" + stateLines(90, 10, 2, 0)
	})
	r, _ := New("unix://" + path)
	st, err := r.SetWeights(context.Background(), "payments_api", subsets, map[string]int{"stable": 90, "canary": 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Weights["canary"] != 10 {
		t.Errorf("state = %+v", st)
	}
	want := "set server payments_api/stable weight 90; set server payments_api/canary weight 10; show servers state payments_api"
	if len(f.lines) != 1 || f.lines[0] != want {
		t.Errorf("commands = %q, want one write %q", f.lines, want)
	}
	if _, err := r.SetWeights(context.Background(), "payments_api", subsets, map[string]int{"stable": 90}, nil); !errors.Is(err, router.ErrRejected) {
		t.Errorf("weights not summing to 100: %v", err)
	}
	_, err = r.Restore(context.Background(), "payments_api", subsets, router.State{Raw: map[string]int{"stable": 300, "canary": 0}}, nil)
	if !errors.Is(err, router.ErrRejected) {
		t.Errorf("weight 300: %v, want ErrRejected", err)
	}
}

// A flip writes the server that gains traffic first: HAProxy runs the
// commands of a batch one by one, and stable=0 before canary=100 would leave
// the backend without a server for a moment.
func TestSetWeightsNeverEmptiesTheBackend(t *testing.T) {
	f, path := startFake(t, func(string) string { return "\n\n" + stateLines(0, 100, 2, 0) })
	r, _ := New(path)
	if _, err := r.SetWeights(context.Background(), "payments_api", subsets, map[string]int{"stable": 0, "canary": 100}, nil); err != nil {
		t.Fatal(err)
	}
	want := "set server payments_api/canary weight 100; set server payments_api/stable weight 0; show servers state payments_api"
	if len(f.lines) != 1 || f.lines[0] != want {
		t.Errorf("commands = %q, want %q", f.lines, want)
	}
}

func TestCommandErrors(t *testing.T) {
	_, path := startFake(t, func(line string) string {
		switch {
		case strings.HasPrefix(line, "show servers state"):
			return "Can't find backend.\n\n"
		case strings.HasPrefix(line, "show stat"):
			return "No such proxy.\n\n"
		}
		return "No such server.\n\n\n" + stateLines(1, 1, 2, 0)
	})
	r, _ := New(path)
	if _, err := r.Weights(context.Background(), "nope", subsets); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("unknown backend: %v", err)
	}
	if _, err := r.Counters(context.Background(), "nope", subsets); !errors.Is(err, router.ErrNotFound) {
		t.Errorf("unknown proxy: %v", err)
	}
	if _, err := r.Weights(context.Background(), "bad;name", subsets); !errors.Is(err, router.ErrRejected) {
		t.Errorf("name with ';': %v", err)
	}
}

func TestCounters(t *testing.T) {
	f, path := startFake(t, func(string) string { return statAnswer })
	r, _ := New(path)
	cs, err := r.Counters(context.Background(), "payments_api", subsets)
	if err != nil {
		t.Fatal(err)
	}
	if got := cs["stable"]; got.Requests != 120 || got.Errors5xx != 7 || got.ResponseMs != 12 || got.TotalMs != 15 || got.Status != "UP" {
		t.Errorf("stable = %+v", got)
	}
	if got := cs["canary"]; got.Requests != 30 || got.Errors5xx != 3 || got.Status != "MAINT" {
		t.Errorf("canary = %+v", got)
	}
	if f.lines[0] != "show stat payments_api 4 -1" {
		t.Errorf("command = %q", f.lines[0])
	}
}

func TestUnreachable(t *testing.T) {
	r, _ := New(filepath.Join(t.TempDir(), "missing.sock"))
	_, err := r.Weights(context.Background(), "payments_api", subsets)
	if err == nil || errors.Is(err, router.ErrNotFound) || errors.Is(err, router.ErrRejected) {
		t.Errorf("unreachable socket: %v, want a transient error", err)
	}
	if _, err := New("http://x"); err == nil {
		t.Error("http:// address accepted")
	}
}

// Names that would smuggle a second runtime-API command, or that HAProxy
// itself would never accept, are refused before anything is sent.
func TestRefusesNamesOutsideHAProxySyntax(t *testing.T) {
	f, path := startFake(t, func(string) string { return stateLines(50, 50, 2, 0) })
	r, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bad := []string{"be;shutdown", "be shutdown", "be\tx", "pay\u202Ements", "be\u0085x", "bé", "be/x", "be\x00", "", strings.Repeat("a", 129)}
	for _, name := range bad {
		if _, err := r.Weights(ctx, name, subsets); !errors.Is(err, router.ErrRejected) {
			t.Errorf("Weights(backend %q) = %v, want ErrRejected", name, err)
		}
		if _, err := r.SetWeights(ctx, "payments_api", []string{"stable", name}, map[string]int{"stable": 100}, nil); !errors.Is(err, router.ErrRejected) {
			t.Errorf("SetWeights(server %q) = %v, want ErrRejected", name, err)
		}
		if _, err := r.Counters(ctx, name, subsets); !errors.Is(err, router.ErrRejected) {
			t.Errorf("Counters(backend %q) = %v, want ErrRejected", name, err)
		}
	}
	f.mu.Lock()
	sent := len(f.lines)
	f.mu.Unlock()
	if sent != 0 {
		t.Fatalf("%d commands reached HAProxy: %q", sent, f.lines)
	}
	for _, good := range []string{"payments_api", "be-1.v2:blue"} {
		if err := ValidName(good); err != nil {
			t.Errorf("ValidName(%q) = %v", good, err)
		}
	}
	if _, err := r.Weights(ctx, "payments_api", subsets); err != nil {
		t.Fatalf("a valid name: %v", err)
	}
}

func TestServersReadsEveryServerOfTheBackend(t *testing.T) {
	f, path := startFake(t, func(string) string { return stateLines(100, 0, 2, 8) })
	r, _ := New(path)
	got, err := r.Servers(context.Background(), "payments_api")
	if err != nil {
		t.Fatal(err)
	}
	if s := got["stable"]; s.UWeight != 100 || s.IWeight != 256 || s.Op != 2 || s.Admin != 8 || s.Health().State != router.StateDrain {
		t.Errorf("stable = %+v", s)
	}
	if s := got["canary"]; s.UWeight != 0 || s.Op != 2 || s.Health().State != router.StateUp {
		t.Errorf("canary = %+v", s)
	}
	if len(got) != 2 || f.lines[0] != "show servers state payments_api" {
		t.Errorf("servers = %v after %q", got, f.lines)
	}
	if _, err := r.Servers(context.Background(), "be;show"); !errors.Is(err, router.ErrRejected) || len(f.lines) != 1 {
		t.Errorf("bad backend name: %v, commands %q", err, f.lines)
	}
}

func TestStatsByServerName(t *testing.T) {
	_, path := startFake(t, func(string) string { return statAnswer })
	r, _ := New(path)
	rows, err := r.Stats(context.Background(), "payments_api")
	if err != nil {
		t.Fatal(err)
	}
	for col, want := range map[string]int64{"stot": 30, "hrsp_5xx": 3, "rtime": 0, "wretr": 0} {
		if got, err := rows["canary"].Int(col); err != nil || got != want {
			t.Errorf("canary %s = %d, %v; want %d", col, got, err, want)
		}
	}
	if _, err := (StatRow{"pxname": "be", "svname": "s", "stot": "x"}).Int("stot"); err == nil || !strings.Contains(err.Error(), "be/s") {
		t.Errorf("non-numeric column: %v", err)
	}
	other, err := r.Stats(context.Background(), "other")
	if err != nil || len(other) != 0 {
		t.Errorf("rows of another backend leak in: %v, %v", other, err)
	}
}
