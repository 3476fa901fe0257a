package worker

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/rollbook/rollbook/activities"
	"github.com/rollbook/rollbook/internal/release"
	"github.com/rollbook/rollbook/internal/workerconfig"
)

// buildRelease resolves the release drivers (URLs and tokens from the
// environment or files) and the targets.
func buildRelease(cfg *Config) (*activities.Release, error) {
	drivers := map[string]release.Driver{}
	for _, n := range slices.Sorted(maps.Keys(cfg.ReleaseDrivers)) {
		d := cfg.ReleaseDrivers[n]
		switch d.Driver {
		case "exec":
			ec := d.ExecConfig()
			if env := d.Exec.DirEnv; env != "" {
				if ec.Dir = os.Getenv(env); ec.Dir == "" {
					return nil, fmt.Errorf("release driver %s: environment variable %s (exec.dirEnv) is empty", n, env)
				}
			}
			e, err := release.NewExec(n, ec)
			if err != nil {
				return nil, err
			}
			drivers[n] = e
		case "http":
			h := d.HTTP
			u, err := workerconfig.ResolveAddress("release driver "+n, AddressConfig{URL: h.URL, URLEnv: h.URLEnv})
			if err != nil {
				return nil, err
			}
			token := ""
			switch {
			case h.TokenEnv != "":
				if token = os.Getenv(h.TokenEnv); token == "" {
					return nil, fmt.Errorf("release driver %s: environment variable %s is empty", n, h.TokenEnv)
				}
			case h.TokenFile != "":
				b, err := os.ReadFile(h.TokenFile)
				if err != nil {
					return nil, fmt.Errorf("release driver %s: reading tokenFile: %w", n, err)
				}
				token = strings.TrimSpace(string(b))
			}
			hd, err := release.NewHTTP(n, release.HTTPConfig{URL: u, Token: token, RequestTimeout: h.RequestTimeout,
				DeployTimeout: h.DeployTimeout, PollInterval: h.PollInterval,
				Wait: release.WaitPolicy{Timeout: d.Wait.Timeout, Interval: d.Wait.Interval}})
			if err != nil {
				return nil, err
			}
			drivers[n] = hd
		}
	}
	targets := map[string]activities.ReleaseTarget{}
	for _, n := range slices.Sorted(maps.Keys(cfg.Targets)) {
		t := cfg.Targets[n]
		name := t.Name
		if name == "" {
			name = n
		}
		targets[n] = activities.ReleaseTarget{Driver: drivers[t.Driver], Name: name}
	}
	return activities.NewRelease(targets)
}
