package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

const modulePath = "github.com/rollbook/rollbook"

// startDemo builds examples/demoapi (unless Options.DemoBinary is set) and starts it twice:
// "stable" (StableVersion) and "canary" (CanaryVersion).
func (s *Stack) startDemo(ctx context.Context, b binaries, pt stackPorts) error {
	bin := s.opts.DemoBinary
	if bin == "" {
		root := s.opts.ModuleRoot
		if root == "" {
			var err error
			if root, err = FindModuleRoot(); err != nil {
				return fmt.Errorf("building examples/demoapi: %w (or set Options.ModuleRoot / Options.DemoBinary)", err)
			}
		}
		bin = filepath.Join(s.Dir, "bin", "demoapi")
		cmd := exec.CommandContext(ctx, b.goTool, "build", "-o", bin, "./examples/demoapi")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./examples/demoapi in %s: %w\n%s", root, err, out)
		}
	}
	instances := []struct {
		name, version, url string
		port               int
	}{
		{"demo-stable", s.opts.StableVersion, s.DemoStableURL, pt.DemoStable},
		{"demo-canary", s.opts.CanaryVersion, s.DemoCanaryURL, pt.DemoCanary},
	}
	procs := make([]*proc, len(instances))
	for i, in := range instances {
		p, err := s.spawn(spawnSpec{name: in.name, exe: bin, dir: s.Dir, args: []string{
			"-listen", hostPort(in.port), "-version", in.version, "-name", in.name[len("demo-"):],
		}})
		if err != nil {
			return err
		}
		procs[i] = p
	}
	for i, in := range instances {
		if err := waitFor(ctx, procs[i], 50*time.Millisecond, func(ctx context.Context) error {
			return httpOK(ctx, in.url+"/healthz")
		}); err != nil {
			return err
		}
	}
	return nil
}

// FindModuleRoot walks up from the working directory to rollbook's go.mod and returns its
// directory (the demo API, the benchmark and the crash campaign build from there).
func FindModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+modulePath+"\n")) {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New("cannot find the rollbook module (go.mod of " + modulePath + ") above " + dir + ": run from the repository")
		}
	}
}
