package devstack

import (
	"fmt"
	"net"
	"slices"
)

// freePorts returns n distinct ports on 127.0.0.1 that are free for both TCP and UDP right
// now (Consul's Serf ports use both), none of them in avoid (ports the stack has already
// given to a component that has not bound them yet). All are held open until every port is
// found, so the same port is never returned twice; a process can still take one before
// the component binds it, which startComponent detects and survives.
func freePorts(n int, avoid []int) ([]int, error) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	ports := make([]int, 0, n)
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 20*n {
			return nil, fmt.Errorf("devstack: could not find %d free ports on 127.0.0.1", n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("devstack: free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			l.Close()
			continue
		}
		// An avoided port stays held too, so that the kernel does not offer it again.
		closers = append(closers, func() { l.Close(); u.Close() })
		if !slices.Contains(avoid, port) {
			ports = append(ports, port)
		}
	}
	return ports, nil
}

// all returns every port in pt.
func (pt stackPorts) all() []int {
	return []int{pt.Temporal, pt.TemporalHTTP, pt.TemporalMetrics, pt.TemporalUI,
		pt.ConsulHTTP, pt.ConsulSerfLAN, pt.ConsulSerfWAN, pt.ConsulServer, pt.PG,
		pt.DemoStable, pt.DemoCanary, pt.HAProxy, pt.HAProxyAdmin, pt.HAProxyStats,
		pt.HAProxyMetrics, pt.Prometheus, pt.Alertmanager}
}
