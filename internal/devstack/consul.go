package devstack

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startConsul runs Consul as a single server that bootstraps itself, on free ports, with DNS
// and gRPC off, and waits until it has elected itself leader.
//
// Not `consul agent -dev`: the dev agent keeps its Raft log and KV store in memory, so a
// restart of the agent (StopComponent / StartComponent, or a crash) would lose every key and
// config entry — and rollbook's compensations would then, correctly, refuse to restore keys
// that someone "deleted". A real server with a data directory (<Dir>/consul) keeps them,
// which is what an outage test needs and what production looks like. The dev agent's other
// settings are kept (Connect on, the UI), with Raft timing at raft_multiplier 1: the first
// election takes 1–2 s instead of the dev agent's tens of milliseconds (the dev agent's
// faster consul.raft timings cannot be set outside -dev: Consul merges its defaults over
// them), which the stack's other components, starting in parallel, mostly hide.
func (s *Stack) startConsul(ctx context.Context, b binaries, pt stackPorts) error {
	args := []string{
		"agent",
		"-server", "-bootstrap",
		"-data-dir", filepath.Join(s.Dir, "consul"),
		"-ui",
		"-bind", "127.0.0.1",
		"-client", "127.0.0.1",
		"-node", "rollbook-dev",
		"-http-port", strconv.Itoa(pt.ConsulHTTP),
		"-https-port", "-1",
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
		"-dns-port", "-1",
		"-serf-lan-port", strconv.Itoa(pt.ConsulSerfLAN),
		"-serf-wan-port", strconv.Itoa(pt.ConsulSerfWAN),
		"-server-port", strconv.Itoa(pt.ConsulServer),
		"-hcl", "performance { raft_multiplier = 1 }",
		"-hcl", "connect { enabled = true }", // as in -dev; the service-splitter tests were written against it
		"-hcl", "disable_update_check = true", // no network calls home from a closed machine
		"-log-level", "warn",
	}
	p, err := s.spawn(spawnSpec{name: "consul", exe: b.consul, args: args, dir: s.Dir})
	if err != nil {
		return err
	}
	return waitFor(ctx, p, 50*time.Millisecond, func(ctx context.Context) error {
		return consulReady(ctx, s.ConsulHTTPAddr)
	})
}

// consulReady wants a leader from /v1/status/leader.
func consulReady(ctx context.Context, addr string) error {
	if addr == "" {
		return errors.New("no address")
	}
	body, err := httpGet(ctx, addr+"/v1/status/leader")
	if err != nil {
		return err
	}
	if leader := strings.Trim(strings.TrimSpace(string(body)), `"`); leader == "" {
		return errors.New("no leader yet")
	}
	return nil
}
