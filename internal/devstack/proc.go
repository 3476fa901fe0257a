package devstack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one process of the stack: either a child of this process (cmd != nil) or one
// found in the pids file of a running stack (Attach).
type proc struct {
	name string
	pid  int
	exe  string // resolved executable path, checked against /proc/<pid>/exe before signalling
	log  string

	cmd  *exec.Cmd
	done chan struct{} // closed when a child has exited (nil for attached processes)
	err  error         // the child's exit error, valid after done is closed
}

type spawnSpec struct {
	name   string
	exe    string
	args   []string
	dir    string
	env    []string // added to the environment
	cred   *syscall.Credential
	detach bool
	// appendLog keeps the log of an earlier run of the same process (a component
	// restarted), after a marker line.
	appendLog bool
}

// spawn starts a process with stdout and stderr going to its own log file in logDir.
//
// Detached processes get a new session (Setsid) so they outlive this process. Attached
// ones get SIGTERM if this process dies, so a crashed test leaves nothing behind.
func spawn(logDir string, sp spawnSpec) (*proc, error) {
	exe, err := filepath.EvalSymlinks(sp.exe)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sp.name, err)
	}
	logPath := filepath.Join(logDir, sp.name+".log")
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if sp.appendLog {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logf, err := os.OpenFile(logPath, flags, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	if sp.appendLog {
		fmt.Fprintf(logf, "\n==== devstack: %s started again at %s ====\n", sp.name, time.Now().Format(time.RFC3339))
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()

	cmd := exec.Command(exe, sp.args...)
	cmd.Dir = sp.dir
	cmd.Env = append(os.Environ(), sp.env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	attr := &syscall.SysProcAttr{Credential: sp.cred}
	if sp.detach {
		attr.Setsid = true
	} else {
		attr.Setpgid = true // Ctrl-C in a terminal reaches us, and we stop the stack in order
		attr.Pdeathsig = syscall.SIGTERM
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", sp.name, err)
	}
	p := &proc{name: sp.name, pid: cmd.Process.Pid, exe: exe, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether a child has exited; always false for attached processes.
func (p *proc) exited() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// alive reports whether the process still runs and is still the program we started (a
// recycled PID belonging to something else counts as gone).
func (p *proc) alive() bool {
	if p.pid <= 0 || p.exited() {
		return false
	}
	if err := syscall.Kill(p.pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid)); err == nil {
		// A zombie has exited; it only waits for its parent to reap it.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
	if err != nil {
		// Not readable (another user's process without privileges): trust the PID.
		return !errors.Is(err, os.ErrNotExist)
	}
	return strings.TrimSuffix(link, " (deleted)") == p.exe
}

// stop sends sig, waits up to grace, then escalates through the extra signals (each with
// the same grace) and finally SIGKILL.
func (p *proc) stop(grace time.Duration, sigs ...syscall.Signal) error {
	if len(sigs) == 0 {
		sigs = []syscall.Signal{syscall.SIGTERM}
	}
	for _, sig := range append(sigs, syscall.SIGKILL) {
		if !p.alive() {
			return nil
		}
		if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("%s (pid %d): %w", p.name, p.pid, err)
		}
		if p.waitGone(grace) {
			return nil
		}
	}
	if p.waitGone(5 * time.Second) {
		return nil
	}
	return fmt.Errorf("%s (pid %d) did not exit", p.name, p.pid)
}

func (p *proc) waitGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if p.done != nil {
			select {
			case <-p.done:
				return true
			case <-time.After(20 * time.Millisecond):
			}
		} else {
			time.Sleep(20 * time.Millisecond)
		}
		if !p.alive() {
			// A child of ours that has exited is a zombie until cmd.Wait
			// reaps it, and its PID still answers kill(pid, 0): wait for
			// the reaping so that "stopped" means the PID is gone.
			if p.done != nil {
				select {
				case <-p.done:
				case <-time.After(2 * time.Second):
				}
			}
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// exitError describes a child that exited while the stack was starting, with the end of
// its log.
func (p *proc) exitError() error {
	return fmt.Errorf("%s exited during start (%v); last lines of %s:\n%s", p.name, p.err, p.log, tail(p.log, 15))
}

// tail returns the last n lines of a file, indented.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "    (no log: " + err.Error() + ")"
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 16<<10 {
		_, _ = f.Seek(-16<<10, io.SeekEnd)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, "    "+sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "    (empty)"
	}
	return strings.Join(lines, "\n")
}

// The pids file lists one process a line: name, PID and executable, tab-separated.

func writePids(path string, procs []*proc) error {
	var b strings.Builder
	b.WriteString("# rollbook dev stack processes: name<TAB>pid<TAB>executable (used by `stack down`)\n")
	for _, p := range procs {
		fmt.Fprintf(&b, "%s\t%d\t%s\n", p.name, p.pid, p.exe)
	}
	return writeFileAtomic(path, []byte(b.String()), 0o644)
}

func readPids(path string) ([]*proc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var procs []*proc
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want name<TAB>pid<TAB>executable", path, i+1)
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("%s:%d: bad pid %q", path, i+1, f[1])
		}
		procs = append(procs, &proc{name: f[0], pid: pid, exe: f[2], log: filepath.Join(filepath.Dir(path), "logs", f[0]+".log")})
	}
	return procs, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
