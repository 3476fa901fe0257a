package devstack

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// startConsul runs a Consul dev agent (in-memory, a single server) on free ports, with DNS
// and gRPC off, and waits until it has elected itself leader.
func (s *Stack) startConsul(ctx context.Context, b binaries, pt stackPorts) error {
	args := []string{
		"agent", "-dev",
		"-bind", "127.0.0.1",
		"-client", "127.0.0.1",
		"-node", "rollbook-dev",
		"-http-port", strconv.Itoa(pt.consulHTTP),
		"-https-port", "-1",
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
		"-dns-port", "-1",
		"-serf-lan-port", strconv.Itoa(pt.consulSerfLAN),
		"-serf-wan-port", strconv.Itoa(pt.consulSerfWAN),
		"-server-port", strconv.Itoa(pt.consulServer),
		"-log-level", "warn",
	}
	p, err := s.spawn(spawnSpec{name: "consul", exe: b.consul, args: args, dir: s.Dir})
	if err != nil {
		return err
	}
	return waitFor(ctx, p, 100*time.Millisecond, func(ctx context.Context) error {
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
