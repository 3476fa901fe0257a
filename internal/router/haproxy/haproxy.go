// Package haproxy is the router driver for HAProxy's runtime API (the
// "stats socket" with level admin), over a unix socket or TCP.
//
// Weights: rollbook writes HAProxy weight = percent (0–100; HAProxy accepts
// 0–256), so a split such as 10/90 is exact and reads back as written. Live
// weights set by someone else (for example the configuration's 1/1) are
// reported as percentages of their sum, with the raw values in State.Raw so
// that a restore puts them back exactly. Servers of the backend that are not
// among the route's subsets are not touched and not counted.
//
// Every call opens one connection and sends its commands in one write,
// separated by ";", so that several "set server ... weight" commands take
// effect within microseconds of each other, without a reload. HAProxy runs
// them one after the other and may serve other connections (requests, other
// runtime API clients) in between, so a batch is not atomic: the weights are
// written highest target first, so that no moment of the batch leaves every
// server of the route at weight 0 (HAProxy would answer 503). The runtime
// API has no check-and-set: callers read, decide and write in two round
// trips.
package haproxy

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rollbook/rollbook/internal/router"
)

// DefaultTimeout bounds one command batch when the context has no earlier
// deadline.
const DefaultTimeout = 5 * time.Second

// Router talks to one HAProxy runtime API endpoint.
type Router struct {
	network, address string
	timeout          time.Duration
}

var _ router.Router = (*Router)(nil)

// Option configures a Router.
type Option func(*Router)

// WithTimeout bounds each command batch (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(r *Router) { r.timeout = d } }

// New returns a driver for the runtime API at addr: a unix socket path
// ("/run/haproxy/admin.sock" or "unix:///run/haproxy/admin.sock") or
// "tcp://host:port".
func New(addr string, opts ...Option) (*Router, error) {
	r := &Router{timeout: DefaultTimeout}
	switch {
	case strings.HasPrefix(addr, "tcp://"):
		r.network, r.address = "tcp", strings.TrimPrefix(addr, "tcp://")
		if _, _, err := net.SplitHostPort(r.address); err != nil {
			return nil, fmt.Errorf("haproxy runtime API address %q: %w", addr, err)
		}
	case strings.HasPrefix(addr, "unix://"):
		r.network, r.address = "unix", strings.TrimPrefix(addr, "unix://")
	case strings.Contains(addr, "://"):
		return nil, fmt.Errorf("haproxy runtime API address %q: want a socket path, unix://PATH or tcp://HOST:PORT", addr)
	default:
		r.network, r.address = "unix", addr
	}
	if r.address == "" {
		return nil, fmt.Errorf("haproxy runtime API address %q is empty", addr)
	}
	for _, o := range opts {
		o(r)
	}
	if r.timeout <= 0 {
		return nil, fmt.Errorf("haproxy timeout must be positive, got %s", r.timeout)
	}
	return r, nil
}

func (r *Router) String() string { return "haproxy(" + r.network + ":" + r.address + ")" }

// Exec sends commands in one write, separated by ";", and returns HAProxy's
// whole answer. Each command's answer ends with an empty line.
func (r *Router) Exec(ctx context.Context, cmds ...string) (string, error) {
	for _, c := range cmds {
		if strings.ContainsAny(c, ";\n\r") {
			return "", fmt.Errorf("haproxy command %q: must not contain ';' or newlines: %w", c, router.ErrRejected)
		}
	}
	deadline := time.Now().Add(r.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var d net.Dialer
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := d.DialContext(dctx, r.network, r.address)
	if err != nil {
		return "", fmt.Errorf("connecting to %s: %w", r, err)
	}
	defer conn.Close()
	// Closing the connection unblocks the read when ctx is cancelled.
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		return "", fmt.Errorf("setting deadline on %s: %w", r, err)
	}
	if _, err := io.WriteString(conn, strings.Join(cmds, "; ")+"\n"); err != nil {
		return "", fmt.Errorf("sending %q to %s: %w", cmds, r, err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("reading answer to %q from %s: %w", cmds, r, ctx.Err())
		}
		return "", fmt.Errorf("reading answer to %q from %s: %w", cmds, r, err)
	}
	return string(out), nil
}

// Server is one line of "show servers state".
type Server struct {
	Name    string
	Op      int // srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping
	Admin   int // srv_admin_state bit field
	UWeight int // the live weight ("get weight" answers the same)
	IWeight int // the weight in the configuration
}

// srv_admin_state bits (HAProxy's SRV_ADMF_*).
const (
	admFMaint = 0x01
	admIMaint = 0x02
	admCMaint = 0x04
	admFDrain = 0x08
	admIDrain = 0x10
	admRMaint = 0x20
	admHMaint = 0x40
)

// Health reads the server's admin and operational states as the router
// interface reports them.
func (s Server) Health() router.ServerHealth {
	switch {
	case s.Admin&(admFMaint|admIMaint|admCMaint|admRMaint|admHMaint) != 0:
		return router.ServerHealth{State: router.StateMaint, Detail: fmt.Sprintf("admin state 0x%02x", s.Admin)}
	case s.Admin&(admFDrain|admIDrain) != 0:
		return router.ServerHealth{State: router.StateDrain, Detail: fmt.Sprintf("admin state 0x%02x", s.Admin)}
	}
	switch s.Op {
	case 2:
		return router.ServerHealth{State: router.StateUp}
	case 1:
		return router.ServerHealth{State: router.StateDown, Detail: "starting"}
	case 3:
		return router.ServerHealth{State: router.StateDown, Detail: "stopping"}
	default:
		return router.ServerHealth{State: router.StateDown, Detail: "stopped (health checks failing)"}
	}
}

const serversStateHeader = "# be_id "

// parseServersState parses the answer to "show servers state <backend>",
// possibly preceded by the answers of earlier commands in the batch, which
// must all be empty (success). It returns backend's servers by name.
func parseServersState(out, backend string) (map[string]Server, error) {
	i := strings.Index(out, serversStateHeader)
	if i < 0 {
		msg := strings.TrimSpace(out)
		if strings.Contains(msg, "Can't find backend") || strings.Contains(msg, "No such backend") {
			return nil, fmt.Errorf("backend %q: %s: %w", backend, msg, router.ErrNotFound)
		}
		return nil, fmt.Errorf("unexpected answer to show servers state %s: %q: %w", backend, msg, router.ErrRejected)
	}
	// Before the header: earlier commands' answers, then the format version.
	prefix := strings.TrimSpace(out[:i])
	if version, rest, _ := cutLast(prefix); version != "1" {
		return nil, fmt.Errorf("show servers state %s: unsupported format version %q", backend, version)
	} else if rest != "" {
		return nil, commandError(backend, rest)
	}
	sc := bufio.NewScanner(strings.NewReader(out[i:]))
	// Small to start (the observer reads this every few ms), up to 1 MiB a line.
	sc.Buffer(make([]byte, 0, 4096), 1024*1024)
	if !sc.Scan() {
		return nil, fmt.Errorf("show servers state %s: missing header", backend)
	}
	cols := map[string]int{}
	for j, f := range strings.Fields(strings.TrimPrefix(sc.Text(), "#")) {
		cols[f] = j
	}
	for _, c := range []string{"be_name", "srv_name", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight"} {
		if _, ok := cols[c]; !ok {
			return nil, fmt.Errorf("show servers state %s: header lacks %s", backend, c)
		}
	}
	servers := map[string]Server{}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			break
		}
		if len(f) < len(cols) || f[cols["be_name"]] != backend {
			continue
		}
		var s Server
		var err error
		s.Name = f[cols["srv_name"]]
		for _, p := range []struct {
			col string
			dst *int
		}{{"srv_op_state", &s.Op}, {"srv_admin_state", &s.Admin}, {"srv_uweight", &s.UWeight}, {"srv_iweight", &s.IWeight}} {
			if *p.dst, err = strconv.Atoi(f[cols[p.col]]); err != nil {
				return nil, fmt.Errorf("show servers state %s: server %s: %s %q: %w", backend, s.Name, p.col, f[cols[p.col]], err)
			}
		}
		servers[s.Name] = s
	}
	return servers, sc.Err()
}

// cutLast splits s into its last line and everything before it.
func cutLast(s string) (last, before string, ok bool) {
	j := strings.LastIndexByte(s, '\n')
	if j < 0 {
		return s, "", false
	}
	return strings.TrimSpace(s[j+1:]), strings.TrimSpace(s[:j]), true
}

func commandError(backend, msg string) error {
	msg = strings.Join(strings.Fields(msg), " ")
	if strings.Contains(msg, "No such server") || strings.Contains(msg, "No such backend") || strings.Contains(msg, "Can't find backend") {
		return fmt.Errorf("backend %s: %s: %w", backend, msg, router.ErrNotFound)
	}
	return fmt.Errorf("backend %s: haproxy refused: %s: %w", backend, msg, router.ErrRejected)
}

func (r *Router) state(servers map[string]Server, backend string, subsets []string) (router.State, error) {
	st := router.State{
		Raw:     make(map[string]int, len(subsets)),
		Initial: make(map[string]int, len(subsets)),
		Health:  make(map[string]router.ServerHealth, len(subsets)),
	}
	for _, name := range subsets {
		s, ok := servers[name]
		if !ok {
			return router.State{}, fmt.Errorf("server %s/%s: %w", backend, name, router.ErrNotFound)
		}
		st.Raw[name] = s.UWeight
		st.Initial[name] = s.IWeight
		st.Health[name] = s.Health()
	}
	st.Weights = router.Percentages(subsets, st.Raw)
	return st, nil
}

// maxNameLen bounds a backend or server name (and how much of a bad one
// an error quotes).
const maxNameLen = 128

// ValidName checks a backend or server name against HAProxy's own name
// syntax, [A-Za-z0-9_.:-]. Names go into runtime-API commands, which HAProxy
// splits on ';' and whitespace, so anything else could smuggle a command.
func ValidName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("must be 1 to %d characters", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return fmt.Errorf("byte %d (%q) is outside [A-Za-z0-9_.:-]", i, c)
		}
	}
	return nil
}

func checkName(kind, name string) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("%s name %q is not a valid HAProxy name: %v: %w", kind, router.Clip(name, maxNameLen), err, router.ErrRejected)
	}
	return nil
}

func checkNames(backend string, subsets []string) error {
	if err := checkName("backend", backend); err != nil {
		return err
	}
	if len(subsets) == 0 {
		return fmt.Errorf("backend %s: no servers given: %w", backend, router.ErrRejected)
	}
	for _, s := range subsets {
		if err := checkName("server", s); err != nil {
			return err
		}
	}
	return nil
}

// Servers reads every server of backend with "show servers state", by
// name. It is the one reader of that answer: the driver, the dev stack and
// the observers use it. Errors wrap router.ErrNotFound for an unknown backend
// and router.ErrRejected for a name outside HAProxy's syntax.
func (r *Router) Servers(ctx context.Context, backend string) (map[string]Server, error) {
	if err := checkName("backend", backend); err != nil {
		return nil, err
	}
	out, err := r.Exec(ctx, "show servers state "+backend)
	if err != nil {
		return nil, err
	}
	return parseServersState(out, backend)
}

// Weights reads the servers' weights and health with "show servers state".
func (r *Router) Weights(ctx context.Context, backend string, subsets []string) (router.State, error) {
	if err := checkNames(backend, subsets); err != nil {
		return router.State{}, err
	}
	servers, err := r.Servers(ctx, backend)
	if err != nil {
		return router.State{}, err
	}
	return r.state(servers, backend, subsets)
}

// SetWeights sets HAProxy weight = percent for every subset (0 for subsets
// missing from want) and reads the result back, in one write.
func (r *Router) SetWeights(ctx context.Context, backend string, subsets []string, want map[string]int, _ *router.State) (router.State, error) {
	if err := router.ValidatePercent(subsets, want); err != nil {
		return router.State{}, fmt.Errorf("backend %s: %w: %w", backend, err, router.ErrRejected)
	}
	raw := make(map[string]int, len(subsets))
	for _, s := range subsets {
		raw[s] = want[s]
	}
	return r.setRaw(ctx, backend, subsets, raw)
}

// Restore sets the captured raw weights back.
func (r *Router) Restore(ctx context.Context, backend string, subsets []string, captured router.State, _ *router.State) (router.State, error) {
	raw := captured.Raw
	if raw == nil {
		raw = captured.Weights
	}
	for _, s := range subsets {
		if _, ok := raw[s]; !ok {
			return router.State{}, fmt.Errorf("backend %s: captured state has no weight for server %s: %w", backend, s, router.ErrRejected)
		}
	}
	return r.setRaw(ctx, backend, subsets, raw)
}

func (r *Router) setRaw(ctx context.Context, backend string, subsets []string, raw map[string]int) (router.State, error) {
	if err := checkNames(backend, subsets); err != nil {
		return router.State{}, err
	}
	// Highest target first: after the first command one server already has
	// its (non-zero) share, whatever the order of the others; a flip from
	// stable=100 to canary=100 in subset order would pass through 0/0.
	order := slices.Clone(subsets)
	slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(raw[b], raw[a]) })
	cmds := make([]string, 0, len(subsets)+1)
	for _, s := range order {
		w := raw[s]
		if w < 0 || w > 256 {
			return router.State{}, fmt.Errorf("server %s/%s: weight %d outside HAProxy's 0–256: %w", backend, s, w, router.ErrRejected)
		}
		cmds = append(cmds, fmt.Sprintf("set server %s/%s weight %d", backend, s, w))
	}
	cmds = append(cmds, "show servers state "+backend)
	out, err := r.Exec(ctx, cmds...)
	if err != nil {
		return router.State{}, err
	}
	servers, err := parseServersState(out, backend)
	if err != nil {
		return router.State{}, err
	}
	st, err := r.state(servers, backend, subsets)
	if err != nil {
		return router.State{}, err
	}
	for _, s := range subsets {
		if st.Raw[s] != raw[s] {
			return st, fmt.Errorf("server %s/%s: weight reads back as %d after setting %d", backend, s, st.Raw[s], raw[s])
		}
	}
	return st, nil
}

// StatRow is one server's line of "show stat", by column name
// ("stot", "hrsp_5xx", "status", ...).
type StatRow map[string]string

// Int reads a numeric column; HAProxy leaves a column empty when it does not
// apply, which reads as 0.
func (row StatRow) Int(col string) (int64, error) {
	v := row[col]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("server %s/%s: %s %q: %w", row["pxname"], row["svname"], col, v, err)
	}
	return n, nil
}

// Stats reads the cumulative counters of backend's servers with "show stat
// <backend> 4 -1" (type 4: servers only), by server name. It is the one
// reader of HAProxy's CSV: Counters and the benchmark use it.
func (r *Router) Stats(ctx context.Context, backend string) (map[string]StatRow, error) {
	if err := checkName("backend", backend); err != nil {
		return nil, err
	}
	out, err := r.Exec(ctx, "show stat "+backend+" 4 -1")
	if err != nil {
		return nil, err
	}
	rows, err := parseStat(out)
	if err != nil {
		return nil, fmt.Errorf("show stat %s: %w", backend, err)
	}
	servers := make(map[string]StatRow, len(rows))
	for _, row := range rows {
		if row["pxname"] == backend {
			servers[row["svname"]] = row
		}
	}
	return servers, nil
}

// Counters reads per-server cumulative counters with Stats. Requests is stot
// (sessions), Errors5xx hrsp_5xx plus wretr (requests retried elsewhere);
// ResponseMs/TotalMs are HAProxy's rtime/ttime averages over the last 1024
// requests.
func (r *Router) Counters(ctx context.Context, backend string, subsets []string) (map[string]router.Counters, error) {
	if err := checkNames(backend, subsets); err != nil {
		return nil, err
	}
	rows, err := r.Stats(ctx, backend)
	if err != nil {
		return nil, err
	}
	res := make(map[string]router.Counters, len(subsets))
	for _, s := range subsets {
		row, ok := rows[s]
		if !ok {
			return nil, fmt.Errorf("show stat: server %s/%s: %w", backend, s, router.ErrNotFound)
		}
		c := router.Counters{Status: row["status"]}
		var retried int64
		for _, p := range []struct {
			col string
			dst *int64
		}{{"stot", &c.Requests}, {"hrsp_5xx", &c.Errors5xx}, {"wretr", &retried}, {"rtime", &c.ResponseMs}, {"ttime", &c.TotalMs}} {
			n, err := row.Int(p.col)
			if err != nil {
				return nil, fmt.Errorf("show stat: %w", err)
			}
			*p.dst = n
		}
		// With retry-on and redispatch, HAProxy answers a client from
		// another server after this one failed, and the failure never
		// reaches hrsp_5xx: count the retries as this server's errors, or a
		// failing canary looks healthy exactly when clients are protected.
		c.Errors5xx += retried
		res[s] = c
	}
	return res, nil
}

// parseStat parses "show stat" CSV into rows.
func parseStat(out string) ([]StatRow, error) {
	if !strings.HasPrefix(out, "# ") {
		msg := strings.TrimSpace(out)
		if strings.Contains(msg, "No such proxy") {
			return nil, fmt.Errorf("%s: %w", msg, router.ErrNotFound)
		}
		return nil, fmt.Errorf("unexpected answer %q: %w", msg, router.ErrRejected)
	}
	rd := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	rd.FieldsPerRecord = -1
	header, err := rd.Read()
	if err != nil {
		return nil, fmt.Errorf("reading CSV header: %w", err)
	}
	var rows []StatRow
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading CSV: %w", err)
		}
		row := make(StatRow, len(header))
		for i, h := range header {
			if i < len(rec) && h != "" {
				row[h] = rec[i]
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}
