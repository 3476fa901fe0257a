package devstack

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Who listens on a port, from /proc (the stack runs on Linux only: it already reads
// /proc/<pid>/exe and /proc/<pid>/stat).
//
// A component that answers its readiness check is not necessarily ours: when another stack
// (or any program) took the port between freePorts and our process's bind, the check
// reaches that other server — another stack's demo API answers /healthz, another Consul
// has a leader — while our process is about to exit with "address already in use". So a
// start counts only once the stack's own process holds the listening socket of every port
// it was given.

// listenState is TCP_LISTEN in /proc/net/tcp's st column.
const listenState = "0A"

// listenerInodes returns the socket inodes listening on TCP port (any local address, IPv4
// or IPv6).
func listenerInodes(port int) (map[uint64]bool, error) {
	want := fmt.Sprintf(":%04X", port)
	inodes := map[uint64]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && table == "/proc/net/tcp6" {
				continue // IPv6 disabled
			}
			return nil, fmt.Errorf("reading listening sockets: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != listenState || !strings.HasSuffix(fields[1], want) {
				continue
			}
			if ino, err := strconv.ParseUint(fields[9], 10, 64); err == nil && ino != 0 {
				inodes[ino] = true
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", table, err)
		}
	}
	return inodes, nil
}

// socketInodes returns the inodes of the sockets process pid has open. errUnverifiable
// when its fd table cannot be read (another user's process, without privileges).
func socketInodes(pid int) (map[uint64]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, errUnverifiable
		}
		return nil, err
	}
	inodes := map[uint64]bool{}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed in the meantime
		}
		if s, ok := strings.CutPrefix(link, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				inodes[ino] = true
			}
		}
	}
	return inodes, nil
}

// familySocketInodes returns the socket inodes of pid and of its descendants.
func familySocketInodes(pid int) (map[uint64]bool, error) {
	inodes, err := socketInodes(pid)
	if err != nil {
		return nil, err
	}
	for _, child := range descendants(pid) {
		socks, err := socketInodes(child)
		if err != nil {
			continue // exited in the meantime, or not ours to read
		}
		for ino := range socks {
			inodes[ino] = true
		}
	}
	return inodes, nil
}

// descendants lists the processes below pid, from each process's parent in
// /proc/<pid>/stat.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses, so read
		// after the last ')'.
		rest := string(stat)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

var errUnverifiable = errors.New("cannot read the process's file descriptors")

// portState says who listens on a port, compared with the process that should.
type portState int

const (
	portFree    portState = iota // nobody listens (yet)
	portOurs                     // the process, and only it, listens on it
	portForeign                  // another process listens on it
	// portShared: the process and another one both listen (SO_REUSEPORT: two HAProxy
	// processes of the same user bind the same port without an error, and the kernel
	// then splits the connections between them). Neither will exit on its own.
	portShared
)

// listenerOf reports whether pid alone listens on port, somebody else does, both, or
// nobody. An fd table it may not read counts as ours: the readiness check is then all
// there is.
func listenerOf(pid, port int) (portState, error) { return listenerState(pid, port, socketInodes) }

// listenerOfTree is listenerOf for a process whose children hold its ports (the release
// supervisor runs the demo API instances): pid or any of its descendants counts as ours.
func listenerOfTree(pid, port int) (portState, error) {
	return listenerState(pid, port, familySocketInodes)
}

func listenerState(pid, port int, sockets func(pid int) (map[uint64]bool, error)) (portState, error) {
	listening, err := listenerInodes(port)
	if err != nil {
		return portFree, err
	}
	if len(listening) == 0 {
		return portFree, nil
	}
	mine, err := sockets(pid)
	if errors.Is(err, errUnverifiable) {
		return portOurs, nil
	}
	if err != nil {
		return portFree, err
	}
	ours, theirs := 0, 0
	for ino := range listening {
		if mine[ino] {
			ours++
		} else {
			theirs++
		}
	}
	switch {
	case theirs == 0:
		return portOurs, nil
	case ours == 0:
		return portForeign, nil
	default:
		return portShared, nil
	}
}

// portHolder names a process other than exclude listening on port ("pid 123 (haproxy)"),
// for error messages; "" when nobody listens. It walks every process's fd table: use it
// only once something has failed.
func portHolder(port, exclude int) string {
	listening, err := listenerInodes(port)
	if err != nil || len(listening) == 0 {
		return ""
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == exclude {
			continue
		}
		socks, err := socketInodes(pid)
		if err != nil {
			continue
		}
		for ino := range listening {
			if socks[ino] {
				comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				return fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm)))
			}
		}
	}
	return "another process"
}
