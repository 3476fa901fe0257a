package release

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rollbook/rollbook/internal/clip"
)

// Exec limits and defaults.
const (
	// DefaultTailBytes is how much of a command's output is kept for errors.
	DefaultTailBytes = 4 << 10
	// maxVersionOutput bounds what a current command may print.
	maxVersionOutput = 4 << 10
	// DefaultPath is the PATH of commands whose configuration sets none.
	DefaultPath = "/usr/local/bin:/usr/bin:/bin"

	DefaultCurrentTimeout = 30 * time.Second
	DefaultDeployTimeout  = 10 * time.Minute
	DefaultHealthTimeout  = 30 * time.Second
	// waitDelay bounds the wait for a command's output pipes after it
	// exited (a daemon it started may hold them) or was killed.
	waitDelay = time.Second
)

// Command is one configured command: its argv (no shell; placeholders are
// whole arguments) and how long it may run.
type Command struct {
	Argv    []string
	Timeout time.Duration
}

// ExecConfig configures an exec driver.
type ExecConfig struct {
	// Current prints the version running on a target ({target}).
	Current Command
	// Deploy puts a version on a target ({target}, {version}, {key}).
	Deploy Command
	// Health exits 0 when a target is healthy ({target}).
	Health Command
	// Dir is the commands' working directory (default the worker's).
	Dir string
	// Env holds the commands' environment: they start from an empty one,
	// so the worker's own secrets never reach them. PATH defaults to
	// DefaultPath.
	Env map[string]string
	// PassEnv names variables copied from the worker's environment (for
	// example a KUBECONFIG the operator set for these commands).
	PassEnv []string
	// Wait bounds the health wait after a deploy.
	Wait WaitPolicy
	// TailBytes is how much output errors quote (default DefaultTailBytes).
	TailBytes int
}

// Exec runs operator-configured commands, one process group per run,
// killed as a whole at its timeout.
type Exec struct {
	name string
	cfg  ExecConfig
	env  []string
	path string
}

var _ Driver = (*Exec)(nil)

// placeholders each command may use.
var execPlaceholders = map[string][]string{
	"current": {PlaceholderTarget},
	"deploy":  {PlaceholderTarget, PlaceholderVersion, PlaceholderKey},
	"health":  {PlaceholderTarget},
}

// NewExec checks the configuration and returns the driver. name is the
// driver's name in the worker configuration, for messages.
func NewExec(name string, c ExecConfig) (*Exec, error) {
	var errs []string
	for _, cmd := range []struct {
		which string
		c     *Command
		def   time.Duration
	}{{"current", &c.Current, DefaultCurrentTimeout}, {"deploy", &c.Deploy, DefaultDeployTimeout}, {"health", &c.Health, DefaultHealthTimeout}} {
		if cmd.c.Timeout == 0 {
			cmd.c.Timeout = cmd.def
		}
		if cmd.c.Timeout < 0 {
			errs = append(errs, fmt.Sprintf("%s: timeout must be positive", cmd.which))
		}
		if msg := checkArgv(cmd.c.Argv, execPlaceholders[cmd.which]); msg != "" {
			errs = append(errs, fmt.Sprintf("%s: %s", cmd.which, msg))
		}
		cmd.c.Argv = slices.Clone(cmd.c.Argv)
	}
	if c.TailBytes <= 0 {
		c.TailBytes = DefaultTailBytes
	}
	env := map[string]string{}
	for _, k := range c.PassEnv {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, fmt.Sprintf("passEnv: invalid variable name %q", k))
			continue
		}
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	for k, v := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			errs = append(errs, fmt.Sprintf("env: invalid variable %q", k))
			continue
		}
		env[k] = v
	}
	if _, ok := env["PATH"]; !ok {
		env["PATH"] = DefaultPath
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("exec driver %s: %s", name, strings.Join(errs, "; "))
	}
	e := &Exec{name: name, cfg: c, path: env["PATH"]}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		e.env = append(e.env, k+"="+env[k])
	}
	return e, nil
}

// checkArgv: a placeholder must be a whole argument, so that a version can
// never be glued to an option or split into two arguments; argv[0] is
// fixed by the operator.
func checkArgv(argv []string, allowed []string) string {
	if len(argv) == 0 || argv[0] == "" {
		return "argv is required (the program and its arguments; no shell is used)"
	}
	if strings.Contains(argv[0], "{") {
		return fmt.Sprintf("the program %q cannot be a placeholder", argv[0])
	}
	for i, a := range argv[1:] {
		if !strings.ContainsAny(a, "{}") {
			continue
		}
		if slices.Contains(allowed, a) {
			continue
		}
		for _, p := range []string{PlaceholderTarget, PlaceholderVersion, PlaceholderKey} {
			if strings.Contains(a, p) && a != p {
				return fmt.Sprintf("argument %d %q: a placeholder must be a whole argument (write %q as its own argument)", i+1, a, p)
			}
		}
		return fmt.Sprintf("argument %d %q: unknown placeholder; this command may use %s", i+1, a, strings.Join(allowed, " "))
	}
	return ""
}

func (e *Exec) String() string { return "exec driver " + e.name }

// Wait returns the configured health wait.
func (e *Exec) Wait() WaitPolicy { return e.cfg.Wait }

// Current runs the current command; its standard output, trimmed, is the
// version. Errors wrap ErrFailed (non-zero exit), ErrTimeout or
// ErrBadVersion (output that is not one version).
func (e *Exec) Current(ctx context.Context, target string) (string, error) {
	var out limitedBuffer
	out.max = maxVersionOutput
	res, err := e.run(ctx, "current", e.cfg.Current, map[string]string{PlaceholderTarget: target}, &out)
	if err != nil {
		return "", err
	}
	if out.over {
		return "", fmt.Errorf("current command of %s for target %s printed more than %d bytes: %w", e, target, maxVersionOutput, ErrBadVersion)
	}
	v := strings.TrimSpace(out.String())
	if err := checkVersion(v); err != nil {
		return "", fmt.Errorf("current command of %s for target %s printed %q: %v: %w (stderr: %s)", e, target, clip.Ellipsis(v, 200), err, ErrBadVersion, res.tail)
	}
	return v, nil
}

// Deploy runs the deploy command. A non-zero exit wraps ErrFailed and a
// command still running at its timeout (killed with its whole process
// group) wraps ErrTimeout; both quote the output's tail.
func (e *Exec) Deploy(ctx context.Context, r Request) error {
	if err := checkRequest(r); err != nil {
		return fmt.Errorf("deploy command of %s: %w", e, err)
	}
	_, err := e.run(ctx, "deploy", e.cfg.Deploy, map[string]string{
		PlaceholderTarget: r.Target, PlaceholderVersion: r.Version, PlaceholderKey: r.Key}, nil)
	return err
}

// Health runs the health command once: exit 0 is healthy; a non-zero exit
// or a timeout is unhealthy, with the output tail as the detail.
func (e *Exec) Health(ctx context.Context, target string) (Health, error) {
	_, err := e.run(ctx, "health", e.cfg.Health, map[string]string{PlaceholderTarget: target}, nil)
	switch {
	case err == nil:
		return Health{Healthy: true}, nil
	case ctx.Err() != nil:
		return Health{}, ctx.Err()
	case errors.Is(err, ErrFailed), errors.Is(err, ErrTimeout):
		return Health{Detail: err.Error()}, nil
	}
	return Health{}, err
}

type runResult struct {
	tail string
}

// run runs one configured command with vars substituted. stdout, when set,
// receives the standard output (the tail then holds standard error only).
func (e *Exec) run(ctx context.Context, which string, c Command, vars map[string]string, stdout *limitedBuffer) (runResult, error) {
	args := make([]string, len(c.Argv))
	for i, a := range c.Argv {
		// NewExec allowed only the placeholders this command gets.
		if v, ok := vars[a]; ok && i > 0 {
			a = v
		}
		args[i] = a
	}
	what := fmt.Sprintf("%s command of %s (target %s", which, e, vars[PlaceholderTarget])
	if v := vars[PlaceholderVersion]; v != "" {
		what += ", version " + v
	}
	what += ")"
	prog, err := e.lookPath(args[0])
	if err != nil {
		return runResult{}, fmt.Errorf("%s: %w", what, err)
	}
	rctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, prog, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Dir = e.cfg.Dir
	cmd.Env = e.env
	// Its own process group, so that a timeout kills whatever the command
	// started too (a shell script's children would otherwise live on and
	// hold the output pipe open).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	t := newTail(e.cfg.TailBytes)
	cmd.Stdout, cmd.Stderr = t, t
	if stdout != nil {
		cmd.Stdout = stdout
	}
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	res := runResult{tail: strings.TrimSpace(t.String())}
	var ee *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		// Exited 0; a daemon it started may still hold the pipes, which
		// is the daemon's business.
		return res, nil
	case ctx.Err() != nil:
		return res, fmt.Errorf("%s: cancelled after %s: %w", what, took, ctx.Err())
	case rctx.Err() != nil:
		return res, fmt.Errorf("%s: did not finish within %s and was killed with its process group: %w; output tail: %s", what, c.Timeout, ErrTimeout, quoteTail(res.tail))
	case errors.As(err, &ee):
		return res, fmt.Errorf("%s: %w: %s after %s; output tail: %s", what, ErrFailed, ee.ProcessState, took, quoteTail(res.tail))
	}
	return res, fmt.Errorf("%s: starting %s: %w", what, args[0], err)
}

// lookPath finds a program without a slash in the commands' PATH (not the
// worker's); a path with a slash is used as written (relative to Dir).
func (e *Exec) lookPath(prog string) (string, error) {
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) && e.cfg.Dir != "" {
			return filepath.Join(e.cfg.Dir, prog), nil
		}
		return prog, nil
	}
	for _, dir := range filepath.SplitList(e.path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, prog)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("program %q not found in the commands' PATH %s", prog, e.path)
}

func quoteTail(s string) string {
	if s == "" {
		return "(no output)"
	}
	return s
}

// limitedBuffer keeps the first max bytes and notes that there were more.
type limitedBuffer struct {
	max  int
	buf  []byte
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := b.max - len(b.buf); room < len(p) {
		b.over = true
		p = p[:max(room, 0)]
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *limitedBuffer) String() string { return string(b.buf) }
