// Package workerconfig reads and checks the worker's configuration and the
// names a runbook uses against it (CheckNames), and resolves a name's
// address or DSN from the environment or a file.
//
// It is apart from internal/worker, which builds the clients and runs the
// worker, so that the CLI's `validate --worker-config` can check names
// without linking the database drivers, goose and the Consul client.
package workerconfig

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/rollbook/rollbook/internal/netguard"
	"github.com/rollbook/rollbook/internal/router"
	"github.com/rollbook/rollbook/internal/router/haproxy"
)

// DefaultTaskQueue is the task queue workers poll and the CLI starts on.
const DefaultTaskQueue = "rollbook"

// Config is the worker's YAML configuration. Secrets are never written in it
// directly: DSNs and addresses come from environment variables or files it
// names, so the file can live in git.
type Config struct {
	TaskQueue string `yaml:"taskQueue"`
	// Databases maps the names runbooks use (migrate.database) to targets.
	Databases map[string]DatabaseConfig `yaml:"databases"`
	// Routers maps the names routes use (route.router) to drivers.
	Routers map[string]RouterConfig `yaml:"routers"`
	Consul  ConsulConfig            `yaml:"consul"`
	// Prometheus maps the names prometheus checks use to server URLs.
	Prometheus map[string]AddressConfig `yaml:"prometheus"`
	// Endpoints maps the names http checks use (http.endpoint) to base
	// URLs, so runbooks need not hard-code addresses.
	Endpoints map[string]AddressConfig `yaml:"endpoints"`
	// Webhooks maps the names runbooks' notify.webhook uses to chat
	// channels: Slack-compatible incoming webhooks (the default kind), or
	// Teams, Discord, Slack and generic JSON webhooks through shoutrrr
	// (notify.go). Usually urlEnv, as the URL is a secret.
	Webhooks map[string]WebhookConfig `yaml:"webhooks"`
	// Paging maps the names runbooks' notify.page uses to paging services
	// (PagerDuty Events v2), paged for the outcomes that need a human.
	Paging map[string]PagingConfig `yaml:"paging"`
	// WebUI is the Temporal Web UI's base URL (http://temporal-ui:8233),
	// for the link in pages; optional.
	WebUI   string        `yaml:"webUI"`
	Metrics MetricsConfig `yaml:"metrics"`
	Log     LogConfig     `yaml:"log"`
	// Codec turns payload encryption on. Without it the worker follows
	// ROLLBOOK_CODEC_KEY_FILE / ROLLBOOK_CODEC_KEY like the CLI does.
	Codec *CodecConfig `yaml:"codec"`
	// Signing lists the public keys bundle signatures are checked against.
	Signing *SigningConfig `yaml:"signing"`

	// ReleaseDrivers and Targets: release steps name a target; the target
	// names a driver (release.go).
	ReleaseDrivers map[string]ReleaseDriverConfig `yaml:"releaseDrivers"`
	Targets        map[string]TargetConfig        `yaml:"targets"`
	// Checks limits what runbooks' http checks may reach.
	Checks ChecksConfig `yaml:"checks"`
}

// ChecksConfig is what the operator allows http checks to reach. Named
// endpoints always work (they reach only their own host); a full url in a
// runbook works only towards AllowedHosts.
type ChecksConfig struct {
	// AllowedHosts are IPs ("127.0.0.1"), CIDRs ("10.0.0.0/8") and exact
	// hostnames ("status.example.com"), checked when the connection is
	// made: an IP or CIDR against the peer's actual address, a hostname by
	// the URL naming it (then it reaches what the name resolves to). Empty:
	// full urls are refused. See internal/netguard.
	AllowedHosts []string `yaml:"allowedHosts"`
}

// SigningConfig: the Ed25519 public keys (PEM files) whose bundle signatures
// this worker trusts. With Require, the preflight refuses a bundle that is
// unsigned, signed by another key, or changed after signing; without it, a
// signature that is present is still checked.
type SigningConfig struct {
	TrustedKeys []string `yaml:"trustedKeys"`
	Require     bool     `yaml:"require"`
}

// CodecConfig says where the AES-256 payload keys are: a file, or an
// environment variable holding them (exactly one). Each holds ID:KEY
// entries, newest first (see internal/codec.ParseKeys).
type CodecConfig struct {
	KeyFile string `yaml:"keyFile"`
	KeyEnv  string `yaml:"keyEnv"`
	// KeyID picks the key that encrypts; default the first listed. The
	// others only decrypt, so keys can rotate.
	KeyID string `yaml:"keyID"`
	// RequireEncryption refuses payloads that are not encrypted (a
	// workflow input or signal sent without the key): see
	// internal/codec.Codec.RequireEncryption. Turn it on once no running
	// workflow's history holds plaintext payloads.
	RequireEncryption bool `yaml:"requireEncryption"`
}

// DatabaseConfig is one migration target.
type DatabaseConfig struct {
	// Dialect is "postgres" or "sqlite".
	Dialect string `yaml:"dialect"`
	// Exactly one of DSNEnv, DSNFile and DSN (for non-secret SQLite paths
	// and password-less DSNs: an inline DSN holding a password is refused,
	// as this file is meant to live in git).
	DSNEnv  string `yaml:"dsnEnv"`
	DSNFile string `yaml:"dsnFile"`
	DSN     string `yaml:"dsn"`
}

// RouterConfig is one traffic router.
type RouterConfig struct {
	// Driver is "haproxy" or "consul-splitter".
	Driver string `yaml:"driver"`
	// Address of the HAProxy runtime API: a unix socket path, unix:///path
	// or tcp://host:port. Or AddressEnv names a variable holding it.
	Address    string `yaml:"address"`
	AddressEnv string `yaml:"addressEnv"`
	// AllowedBackends are the only backends (HAProxy backends, Consul
	// services) runbooks may read or change on this router. Required: an
	// empty list would let a runbook move any service's traffic.
	AllowedBackends []string `yaml:"allowedBackends"`
}

// ConsulConfig: the agent address and ACL token come from the standard
// CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN variables.
type ConsulConfig struct {
	// AllowedPrefixes are the only KV prefixes runbooks may write under.
	// Each ends in "/": "app" would also allow "app-prod/".
	AllowedPrefixes []string `yaml:"allowedPrefixes"`
}

// AddressConfig is a URL given directly or through an environment variable.
type AddressConfig struct {
	URL    string `yaml:"url"`
	URLEnv string `yaml:"urlEnv"`
}

// MetricsConfig configures the Prometheus /metrics listener.
type MetricsConfig struct {
	Listen string `yaml:"listen"`
}

// LogConfig configures the process logger.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or console
}

// LoadConfig reads and checks a worker configuration file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading worker config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig decodes strictly (unknown fields are errors) and validates.
func ParseConfig(name string, data []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("%s: %s", name, yaml.FormatError(err, false, true))
	}
	if c.TaskQueue == "" {
		c.TaskQueue = DefaultTaskQueue
	}
	if errs := c.validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %s", name, strings.Join(errs, "; "))
	}
	return &c, nil
}

func (c *Config) validate() []string {
	var errs []string
	for _, n := range sortedKeys(c.Databases) {
		d := c.Databases[n]
		if d.Dialect != "postgres" && d.Dialect != "sqlite" {
			errs = append(errs, fmt.Sprintf("databases.%s.dialect: %q is not postgres or sqlite", n, d.Dialect))
		}
		set := 0
		for _, s := range []string{d.DSNEnv, d.DSNFile, d.DSN} {
			if s != "" {
				set++
			}
		}
		if set != 1 {
			errs = append(errs, fmt.Sprintf("databases.%s: set exactly one of dsnEnv, dsnFile, dsn", n))
		}
		if d.DSN != "" && dsnHasPassword(d.DSN) {
			// Not echoed: the value is the secret.
			errs = append(errs, fmt.Sprintf("databases.%s.dsn: holds a password; put the DSN in dsnEnv or dsnFile instead (this file must not hold secrets)", n))
		}
	}
	for _, n := range sortedKeys(c.Routers) {
		r := c.Routers[n]
		switch r.Driver {
		case "haproxy":
			if (r.Address == "") == (r.AddressEnv == "") {
				errs = append(errs, fmt.Sprintf("routers.%s: set exactly one of address, addressEnv", n))
			}
		case "consul-splitter":
		default:
			errs = append(errs, fmt.Sprintf("routers.%s.driver: %q is not haproxy or consul-splitter", n, r.Driver))
			continue
		}
		if len(r.AllowedBackends) == 0 {
			errs = append(errs, fmt.Sprintf("routers.%s.allowedBackends: list the backends runbooks may use on this router (required)", n))
		}
		validName := haproxy.ValidName
		if r.Driver == "consul-splitter" {
			validName = router.ValidConsulName
		}
		for i, b := range r.AllowedBackends {
			if err := validName(b); err != nil {
				errs = append(errs, fmt.Sprintf("routers.%s.allowedBackends[%d]: %q is not a valid %s name: %v", n, i, router.Clip(b, 128), r.Driver, err))
			}
		}
	}
	for i, p := range c.Consul.AllowedPrefixes {
		switch {
		case p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, ".."):
			errs = append(errs, fmt.Sprintf("consul.allowedPrefixes[%d]: %q must be a relative prefix without ..", i, p))
		case !strings.HasSuffix(p, "/"):
			errs = append(errs, fmt.Sprintf("consul.allowedPrefixes[%d]: %q must end in \"/\" (as it is, it also allows %q)", i, p, p+"-other/"))
		}
	}
	if _, err := netguard.ParseAllowlist(c.Checks.AllowedHosts); err != nil {
		errs = append(errs, fmt.Sprintf("checks.allowedHosts: %v", err))
	}
	for _, group := range []struct {
		name string
		m    map[string]AddressConfig
	}{{"prometheus", c.Prometheus}, {"endpoints", c.Endpoints}} {
		for _, n := range sortedKeys(group.m) {
			a := group.m[n]
			if (a.URL == "") == (a.URLEnv == "") {
				errs = append(errs, fmt.Sprintf("%s.%s: set exactly one of url, urlEnv", group.name, n))
			}
		}
	}
	errs = append(errs, c.validateNotify()...)
	errs = append(errs, c.validateRelease()...)
	if c.Codec != nil && (c.Codec.KeyFile == "") == (c.Codec.KeyEnv == "") {
		errs = append(errs, "codec: set exactly one of keyFile, keyEnv")
	}
	if c.Signing != nil && len(c.Signing.TrustedKeys) == 0 {
		errs = append(errs, "signing.trustedKeys: list at least one public key file")
	}
	return errs
}

// ResolveDSN reads a database's DSN from where the config says it is.
func ResolveDSN(name string, d DatabaseConfig) (string, error) {
	switch {
	case d.DSN != "":
		return d.DSN, nil
	case d.DSNEnv != "":
		v := os.Getenv(d.DSNEnv)
		if v == "" {
			return "", fmt.Errorf("database %s: environment variable %s is empty", name, d.DSNEnv)
		}
		return v, nil
	default:
		b, err := os.ReadFile(d.DSNFile)
		if err != nil {
			return "", fmt.Errorf("database %s: reading dsnFile: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
}

// ResolveAddress reads an address (a URL) from where the config says it
// is; what names it in errors.
func ResolveAddress(what string, a AddressConfig) (string, error) {
	v := a.URL
	if a.URLEnv != "" {
		v = os.Getenv(a.URLEnv)
		if v == "" {
			return "", fmt.Errorf("%s: environment variable %s is empty", what, a.URLEnv)
		}
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if strings.HasPrefix(what, "webhook") {
			// Webhook URLs carry their secret in the path: never echo them.
			return "", fmt.Errorf("%s: not an http(s) URL", what)
		}
		return "", fmt.Errorf("%s: %s is not an http(s) URL", what, netguard.RedactURL(v))
	}
	return strings.TrimRight(v, "/"), nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// dsnPasswordKeyword finds a password in libpq's keyword form
// ("host=db password=x") or as a URL query parameter ("?password=x").
var dsnPasswordKeyword = regexp.MustCompile(`(?i)(^|[\s?&;])password\s*=`)

// dsnHasPassword reports whether an inline DSN carries a password: a
// postgres URL with one in its user info, or a password keyword or query
// parameter.
func dsnHasPassword(dsn string) bool {
	if dsnPasswordKeyword.MatchString(dsn) {
		return true
	}
	if i := strings.Index(dsn, "://"); i > 0 {
		u, err := url.Parse(dsn)
		if err != nil {
			// Unparseable: judge the user-info part by hand.
			rest := dsn[i+3:]
			at := strings.LastIndex(rest, "@")
			return at > 0 && strings.Contains(rest[:at], ":")
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return false
}
