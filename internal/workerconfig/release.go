package workerconfig

import (
	"fmt"
	"strings"
	"time"

	"github.com/rollbook/rollbook/internal/release"
	"github.com/rollbook/rollbook/runbook"
)

// Limits of release driver timeouts: they must fit in the release
// activities' own timeouts (workflows/release.go), or Temporal would give
// up on an activity while its command still runs.
const (
	// MaxReleaseReadTimeout bounds a current or health command and one
	// http request.
	MaxReleaseReadTimeout = time.Minute
	// MaxReleaseDeployAndWait bounds a deploy plus the health wait after it.
	MaxReleaseDeployAndWait = 25 * time.Minute
)

// ReleaseDriverConfig is one release driver: exec (named commands) or http
// (a deployer's API). Targets refer to it by name.
type ReleaseDriverConfig struct {
	// Driver is "exec" or "http".
	Driver string             `yaml:"driver"`
	Exec   *ExecReleaseConfig `yaml:"exec"`
	HTTP   *HTTPReleaseConfig `yaml:"http"`
	// Wait bounds the health wait after a deploy.
	Wait ReleaseWaitConfig `yaml:"wait"`
}

// ReleaseWaitConfig: how long and how often to probe health after a deploy.
type ReleaseWaitConfig struct {
	Timeout  time.Duration `yaml:"timeout"`  // default 5m
	Interval time.Duration `yaml:"interval"` // default 2s
}

// ExecReleaseConfig: commands run without a shell, from an empty
// environment plus Env and PassEnv.
type ExecReleaseConfig struct {
	Dir string `yaml:"dir"`
	// DirEnv names the worker's environment variable that holds the working
	// directory instead (a directory known only where the worker runs, like
	// the dev stack's); set at most one of dir, dirEnv.
	DirEnv  string            `yaml:"dirEnv"`
	Env     map[string]string `yaml:"env"`
	PassEnv []string          `yaml:"passEnv"`
	Current CommandConfig     `yaml:"current"`
	Deploy  CommandConfig     `yaml:"deploy"`
	Health  CommandConfig     `yaml:"health"`
	// TailBytes is how much output errors quote (default 4096).
	TailBytes int `yaml:"tailBytes"`
}

// CommandConfig is one command: argv with whole-argument placeholders
// ({target}, {version}, {key}) and a timeout.
type CommandConfig struct {
	Argv    []string      `yaml:"argv"`
	Timeout time.Duration `yaml:"timeout"`
}

// HTTPReleaseConfig: a deployer's API (docs/release.md). The token comes
// from an environment variable or a file, never from this file.
type HTTPReleaseConfig struct {
	URL            string        `yaml:"url"`
	URLEnv         string        `yaml:"urlEnv"`
	TokenEnv       string        `yaml:"tokenEnv"`
	TokenFile      string        `yaml:"tokenFile"`
	RequestTimeout time.Duration `yaml:"requestTimeout"` // default 30s
	DeployTimeout  time.Duration `yaml:"deployTimeout"`  // default 10m
	PollInterval   time.Duration `yaml:"pollInterval"`   // default 2s
}

// TargetConfig is one release target runbooks may name.
type TargetConfig struct {
	// Driver names an entry of releaseDrivers.
	Driver string `yaml:"driver"`
	// Name is the target's name on the driver's side ({target}, the
	// deployer's URL); default the target's own name.
	Name string `yaml:"name"`
}

func (c *Config) validateRelease() []string {
	var errs []string
	for _, n := range sortedKeys(c.ReleaseDrivers) {
		d := c.ReleaseDrivers[n]
		p := "releaseDrivers." + n
		if !runbook.ValidTargetName(n) {
			errs = append(errs, fmt.Sprintf("%s: invalid driver name", p))
		}
		wait := orDefault(d.Wait.Timeout, release.DefaultWaitTimeout)
		if d.Wait.Timeout < 0 || d.Wait.Interval < 0 {
			errs = append(errs, fmt.Sprintf("%s.wait: timeout and interval must be positive", p))
		}
		switch d.Driver {
		case "exec":
			e := d.Exec
			if e == nil || d.HTTP != nil {
				errs = append(errs, fmt.Sprintf("%s: driver exec needs an exec block (and no http block)", p))
				continue
			}
			if e.Dir != "" && e.DirEnv != "" {
				errs = append(errs, fmt.Sprintf("%s.exec: set at most one of dir, dirEnv", p))
			}
			for _, cmd := range []struct {
				name string
				c    CommandConfig
				def  time.Duration
			}{{"current", e.Current, release.DefaultCurrentTimeout}, {"health", e.Health, release.DefaultHealthTimeout}} {
				if orDefault(cmd.c.Timeout, cmd.def) > MaxReleaseReadTimeout {
					errs = append(errs, fmt.Sprintf("%s.exec.%s.timeout: at most %s", p, cmd.name, MaxReleaseReadTimeout))
				}
			}
			if orDefault(e.Deploy.Timeout, release.DefaultDeployTimeout)+wait > MaxReleaseDeployAndWait {
				errs = append(errs, fmt.Sprintf("%s: exec.deploy.timeout plus wait.timeout must be at most %s", p, MaxReleaseDeployAndWait))
			}
			// The argv and environment rules live with the driver.
			if _, err := release.NewExec(n, d.ExecConfig()); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", p, err))
			}
		case "http":
			h := d.HTTP
			if h == nil || d.Exec != nil {
				errs = append(errs, fmt.Sprintf("%s: driver http needs an http block (and no exec block)", p))
				continue
			}
			if (h.URL == "") == (h.URLEnv == "") {
				errs = append(errs, fmt.Sprintf("%s.http: set exactly one of url, urlEnv", p))
			}
			if h.TokenEnv != "" && h.TokenFile != "" {
				errs = append(errs, fmt.Sprintf("%s.http: set at most one of tokenEnv, tokenFile", p))
			}
			if orDefault(h.RequestTimeout, release.DefaultRequestTimeout) > MaxReleaseReadTimeout {
				errs = append(errs, fmt.Sprintf("%s.http.requestTimeout: at most %s", p, MaxReleaseReadTimeout))
			}
			if orDefault(h.DeployTimeout, release.DefaultDeployTimeout)+wait > MaxReleaseDeployAndWait {
				errs = append(errs, fmt.Sprintf("%s: http.deployTimeout plus wait.timeout must be at most %s", p, MaxReleaseDeployAndWait))
			}
		default:
			errs = append(errs, fmt.Sprintf("%s.driver: %q is not exec or http", p, d.Driver))
		}
	}
	for _, n := range sortedKeys(c.Targets) {
		t := c.Targets[n]
		p := "targets." + n
		if !runbook.ValidTargetName(n) {
			errs = append(errs, fmt.Sprintf("%s: invalid target name: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters", p))
		}
		if t.Name != "" && !runbook.ValidTargetName(t.Name) {
			errs = append(errs, fmt.Sprintf("%s.name: invalid name %q", p, t.Name))
		}
		if _, ok := c.ReleaseDrivers[t.Driver]; !ok {
			errs = append(errs, fmt.Sprintf("%s.driver: unknown release driver %q (releaseDrivers: %s)", p, t.Driver, strings.Join(sortedKeys(c.ReleaseDrivers), ", ")))
		}
	}
	return errs
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// ExecConfig is the exec driver's configuration for internal/release.
func (d ReleaseDriverConfig) ExecConfig() release.ExecConfig {
	e := d.Exec
	return release.ExecConfig{
		Dir:       e.Dir,
		Env:       e.Env,
		PassEnv:   e.PassEnv,
		Current:   release.Command{Argv: e.Current.Argv, Timeout: e.Current.Timeout},
		Deploy:    release.Command{Argv: e.Deploy.Argv, Timeout: e.Deploy.Timeout},
		Health:    release.Command{Argv: e.Health.Argv, Timeout: e.Health.Timeout},
		TailBytes: e.TailBytes,
		Wait:      release.WaitPolicy{Timeout: d.Wait.Timeout, Interval: d.Wait.Interval},
	}
}
