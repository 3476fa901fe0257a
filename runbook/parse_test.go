package runbook

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	src := header + `deadline: 1h
steps:
  - name: flags
    consul:
      set: {app/flag: "on", "app/with space": x}
      delete: [app/old]
  - name: shift
    traffic: {route: api, weights: {stable: 90, canary: 10}}
  - name: watch
    verify:
      duration: 1m
      interval: 5s
      checks:
        - &errors
          name: errors
          router: {route: api, subset: canary, maxErrorRate: 0.01}
        - name: watched
          continuous: true
          window: 500ms
          router: {route: api, subset: canary, maxErrorRate: 0.01}
        - name: query
          prometheus: {query: up, min: 1}
        - name: compare
          compare: {route: api, metrics: [errors, latency], significance: 0.01}
  - name: approve
    pause: {approval: true, timeout: 2h}
analysis:
  from: shift
  checks: [*errors]
rollback:
  traffic: {steps: [50, 10], interval: 5s}
  verify:
    duration: 30s
    checks:
      - name: healthz
        http:
          url: https://example.com/healthz
          maxLatency: 250ms
`
	rb, err := Parse("ok.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if rb.Deadline.D() != time.Hour || rb.Steps[2].Verify.Interval.D() != 5*time.Second {
		t.Errorf("durations: %v %v", rb.Deadline, rb.Steps[2].Verify.Interval)
	}
	if w := rb.Steps[1].Traffic.Weights; w["canary"] != 10 || w["stable"] != 90 {
		t.Errorf("weights: %v", w)
	}
	if p := rb.Steps[2].Verify.Checks[2].Prometheus; p.Min == nil || *p.Min != 1 || p.Max != nil {
		t.Errorf("prometheus bounds: %+v", p)
	}
	if w := rb.Steps[2].Verify.Checks[1]; !w.Continuous || w.Window.D() != 500*time.Millisecond {
		t.Errorf("continuous check: %+v", w)
	}
	if got := rb.Analysis.Checks[0]; got.Name != "errors" || got.Router == nil || got.Router.MaxErrorRate != 0.01 {
		t.Errorf("alias not resolved: %+v", got)
	}
	if rb.Steps[0].Consul.Set["app/with space"] != "x" {
		t.Errorf("consul set: %v", rb.Steps[0].Consul.Set)
	}
	if rb.Rollback.Verify.Checks[0].HTTP.MaxLatency.D() != 250*time.Millisecond {
		t.Errorf("rollback verify: %+v", rb.Rollback.Verify)
	}
}

// TestParseErrors: each case is a steps section after header (lines 1-4),
// so "steps:" is line 5 and the first step starts on line 6.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		steps string
		want  []string
	}{
		{
			name: "weights sum",
			steps: `steps:
  - name: a
    pause: {duration: 1m}
  - name: b
    pause: {duration: 1m}
  - name: shift
    traffic:
      route: api
      weights: {stable: 90, canary: 20}
`,
			want: []string{"t.yaml:13: steps[2].traffic.weights: weights must sum to 100, got 110"},
		},
		{
			name: "unknown field with suggestion",
			steps: `steps:
  - name: watch
    verify:
      duration: 1m
      checks:
        - name: h
          http: {url: "http://x/", expect_status: 200}
`,
			want: []string{`t.yaml:11: steps[0].verify.checks[0].http.expect_status: unknown field "expect_status" (did you mean "expectStatus"?)`},
		},
		{
			name: "wrong type for a list",
			steps: `steps:
  - name: watch
    verify:
      duration: 1m
      checks: {name: h}
`,
			want: []string{"t.yaml:9: steps[0].verify.checks: must be a list, got a mapping"},
		},
		{
			name: "float for an integer",
			steps: `steps:
  - name: shift
    traffic: {route: api, weights: {stable: 89.5, canary: 10.5}}
`,
			want: []string{
				"t.yaml:7: steps[0].traffic.weights.stable: must be an integer, got number 89.5",
				"t.yaml:7: steps[0].traffic.weights.canary: must be an integer, got number 10.5",
			},
		},
		{
			name: "missing field points at its parent",
			steps: `steps:
  - name: schema
    migrate:
      dir: migrations
`,
			want: []string{"t.yaml:7: steps[0].migrate.database: database is required"},
		},
		{
			name: "empty kind block is a kind with missing fields",
			steps: `steps:
  - name: wait
    pause:
`,
			want: []string{"t.yaml:7: steps[0].pause: a pause needs a duration or approval: true"},
		},
		{
			name: "router check",
			steps: `steps:
  - name: watch
    verify:
      duration: 1m
      checks:
        - name: errors
          router: {route: web, maxErrorRate: -0.1}
`,
			want: []string{
				`t.yaml:11: steps[0].verify.checks[0].router.route: unknown route "web" (routes: [api])`,
				"t.yaml:11: steps[0].verify.checks[0].router.subset: subset is required",
				"t.yaml:11: steps[0].verify.checks[0].router.maxErrorRate: must be a share between 0 and 1 (0.01 is 1%), got -0.1",
			},
		},
		{
			name: "continuous only on router checks, with a bounded window",
			steps: `steps:
  - name: watch
    verify:
      duration: 1m
      checks:
        - {name: h, continuous: true, http: {url: "http://x/"}}
        - {name: w, window: 1s, router: {route: api, subset: canary, maxErrorRate: 0.01}}
        - {name: short, continuous: true, window: 10ms, router: {route: api, subset: canary, maxErrorRate: 0.01}}
        - {name: rounds, continuous: true, successThreshold: 2, router: {route: api, subset: canary, maxErrorRate: 0.01}}
`,
			want: []string{
				"t.yaml:10: steps[0].verify.checks[0].continuous: continuous applies only to router checks, not to a http check (it watches the router's counters)",
				"t.yaml:11: steps[0].verify.checks[1].window: window applies only to a continuous check (continuous: true)",
				"t.yaml:12: steps[0].verify.checks[2].window: must be at least 200ms, got 10ms",
				"t.yaml:13: steps[0].verify.checks[3].successThreshold: successThreshold does not apply to a continuous check: it has no rounds and watches until its step ends",
			},
		},
		{
			name: "default interval longer than duration",
			steps: `steps:
  - name: watch
    verify:
      duration: 5s
      checks: [{name: h, http: {url: "http://x/"}}]
`,
			want: []string{"t.yaml:8: steps[0].verify.duration: duration 5s is shorter than the default interval 10s; set interval"},
		},
		{
			name: "consul limits",
			steps: `steps:
  - name: flags
    consul:
      set:
        "app/ctl\u0001": x
        app/./x: y
`,
			want: []string{
				`t.yaml:9: steps[0].consul.set["app/ctl\x01"]: invalid key "app/ctl\x01": character U+0001 at position 8 is not allowed; keys are printable ASCII`,
				`t.yaml:10: steps[0].consul.set["app/./x"]: key "app/./x" must not contain "." segments`,
			},
		},
		{
			name: "contract migration in the right place is accepted apart from its files",
			steps: `steps:
  - name: shift
    traffic: {route: api, weights: {stable: 0, canary: 100}}
  - name: ok
    pause: {approval: true}
  - name: contract
    irreversible: true
    migrate: {database: payments, dir: m, phase: contract}
  - name: late
    migrate: {database: payments, dir: m}
`,
			want: []string{`t.yaml:13: steps[3]: reversible migrate step "late" comes after the irreversible step "contract": its compensation could never run past the point of no return; mark it irreversible: true or move it before "contract"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(header+tt.steps))
			requireMessages(t, err, tt.want...)
			if n := len(messages(err)); n != len(tt.want) {
				t.Errorf("got %d messages, want %d:\n%v", n, len(tt.want), err)
			}
		})
	}
}

// TestAllErrorsReported: one file with many independent problems reports
// every one of them, in line order.
func TestAllErrorsReported(t *testing.T) {
	_, err := Load("testdata/invalid/multiple-errors.yaml")
	got := messages(err)
	if len(got) < 9 {
		t.Fatalf("got %d errors, want at least 9:\n%v", len(got), err)
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T is not Errors", err)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Errorf("errors not in line order: %v before %v", es[i-1], es[i])
		}
	}
}

func TestFileLevelRefusals(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		sentinel error
	}{
		{"empty", "", ErrEmpty},
		{"comments only", "# nothing\n\n# here\n", ErrEmpty},
		{"NUL", "apiVersion: rollbook/v1\x00", ErrBinary},
		{"invalid UTF-8", "service: \xff\xfe", ErrBinary},
		{"C1 control", "service: a\u0085b\u0090", ErrBinary},
		{"scalar", "hello", ErrNotMapping},
		{"list", "- a\n- b\n", ErrNotMapping},
		{"two documents", "a: 1\n---\nb: 2\n", ErrMultipleDocuments},
		{"syntax", "a: [1, 2\nb: 3\n", ErrSyntax},
		{"bad indentation", "a:\n  b: 1\n c: 2\n", ErrSyntax},
		{"too large", strings.Repeat("#", MaxBundleBytes+1), ErrTooLarge},
		{"too deep", strings.Repeat("[", 1000), ErrSyntax},
		{"too wide", strings.Repeat("k: v\n", 0) + wideMapping(600), ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			rb, err := Parse("f.yaml", []byte(tt.data))
			if rb != nil || !errors.Is(err, tt.sentinel) {
				t.Fatalf("Parse = %v, %v; want error wrapping %v", rb, err, tt.sentinel)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != "f.yaml" {
				t.Errorf("error does not carry the file: %#v", fe)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func wideMapping(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("k")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(": v\n")
	}
	return b.String()
}

// TestYAMLBombIsFast: a billion-laughs file is refused in milliseconds.
func TestYAMLBombIsFast(t *testing.T) {
	data, err := os.ReadFile("testdata/invalid/yaml-bomb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A deeper one too: 30 levels would be 9^30 nodes.
	var deep strings.Builder
	deep.WriteString("l0: &l0 [lol, lol]\n")
	for i := 1; i <= 30; i++ {
		prev := "*l" + strconv.Itoa(i-1)
		deep.WriteString("l" + strconv.Itoa(i) + ": &l" + strconv.Itoa(i) + " [" + strings.Repeat(prev+", ", 8) + prev + "]\n")
	}
	for _, src := range [][]byte{data, []byte(deep.String())} {
		start := time.Now()
		_, err := Parse("bomb.yaml", src)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("bomb refused after %v, want < 100ms", d)
		}
		if !errors.Is(err, ErrAliasBomb) {
			t.Errorf("err = %v, want ErrAliasBomb", err)
		}
	}
}

// TestLoadRefusesLargeFileWithoutReading: a sparse 10 GiB file is refused
// from its size alone.
func TestLoadRefusesLargeFileWithoutReading(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.yaml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10 << 30); err != nil {
		t.Skipf("cannot make a sparse file: %v", err)
	}
	f.Close()
	start := time.Now()
	_, err = Load(p)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("took %v", d)
	}
}

func TestValidateWithoutPositions(t *testing.T) {
	rb := &Runbook{APIVersion: APIVersion, Service: "svc", Steps: []Step{{Name: "s", Pause: &PauseStep{}}}}
	err := Validate(rb, WithFile("bundle"))
	requireMessages(t, err, "bundle: steps[0].pause: a pause needs a duration or approval: true")
	rb.Steps[0].Pause.Duration = Duration(time.Minute)
	if err := Validate(rb); err != nil {
		t.Errorf("valid runbook: %v", err)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "a.yaml", Line: 3, Path: "steps[0].name", Msg: "bad"}, "a.yaml:3: steps[0].name: bad"},
		{FieldError{File: "a.yaml", Msg: "empty"}, "a.yaml: empty"},
		{FieldError{Line: 2, Path: "x", Msg: "m"}, "line 2: x: m"},
		{FieldError{Path: "x", Msg: "m"}, "x: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	var nilErrs Errors
	if nilErrs.err() != nil {
		t.Error("empty Errors must be a nil error")
	}
}

func TestCRLFAndBOM(t *testing.T) {
	src := "\ufeffapiVersion: rollbook/v1\r\nservice: svc\r\nsteps:\r\n  - name: wait\r\n    pause: {duration: 1m}\r\n"
	if _, err := Parse("crlf.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("crlf.yaml", []byte(strings.Replace(src, "1m", "-1m", 1)))
	requireMessages(t, err, "crlf.yaml:5: steps[0].pause.duration: must be positive, got -1m")
}
