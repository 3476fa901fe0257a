package devstack

import (
	"fmt"
	"net"
)

// freePorts returns n distinct ports on 127.0.0.1 that are free for both TCP and UDP right
// now (Consul's Serf ports use both). All are held open until every port is found, so the
// same port is never returned twice; a process could still take one before the stack
// binds it, which start reports as that component failing to start.
func freePorts(n int) ([]int, error) {
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
		closers = append(closers, func() { l.Close(); u.Close() })
		ports = append(ports, port)
	}
	return ports, nil
}
