package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rollbook/rollbook/internal/clip"
)

// HTTP limits and defaults.
const (
	// maxResponseBytes bounds every answer read from a deployer.
	maxResponseBytes = 64 << 10
	// maxMessage bounds a deployer's message quoted in errors.
	maxMessage = 1 << 10

	DefaultRequestTimeout = 30 * time.Second
	DefaultPollInterval   = 2 * time.Second
)

// Deployment statuses of the deployer API (docs/release.md).
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// HTTPConfig configures an http driver.
type HTTPConfig struct {
	// URL is the deployer API's base URL (http or https).
	URL string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// RequestTimeout bounds each request (default DefaultRequestTimeout).
	RequestTimeout time.Duration
	// DeployTimeout bounds the poll of one deployment until it ends
	// (default DefaultDeployTimeout).
	DeployTimeout time.Duration
	// PollInterval is the time between two polls (default DefaultPollInterval).
	PollInterval time.Duration
	// Wait bounds the health wait after a deploy.
	Wait WaitPolicy
	// Client replaces the default client (tests).
	Client *http.Client
}

// HTTP drives a deployer's API (the contract is in docs/release.md):
//
//	GET  {base}/targets/{target}                   → {"version", "healthy", "message"}
//	POST {base}/targets/{target}/deploy            ← {"version"}, Idempotency-Key → {"id", "status", "version", "message"}
//	GET  {base}/targets/{target}/deployments/{id}  → {"id", "status", "version", "message"}
type HTTP struct {
	name   string
	base   *url.URL
	cfg    HTTPConfig
	client *http.Client
}

var _ Driver = (*HTTP)(nil)

// NewHTTP checks the configuration and returns the driver. name is the
// driver's name in the worker configuration, for messages.
func NewHTTP(name string, c HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("http driver %s: url must be an http(s) base URL without credentials, query or fragment", name)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if strings.ContainsAny(c.Token, "\r\n") {
		return nil, fmt.Errorf("http driver %s: the token contains a line break", name)
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.DeployTimeout <= 0 {
		c.DeployTimeout = DefaultDeployTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	client := c.Client
	if client == nil {
		client = &http.Client{
			// A redirect could carry the token elsewhere; a deployer API
			// has no reason to send one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &HTTP{name: name, base: u, cfg: c, client: client}, nil
}

func (h *HTTP) String() string { return "http driver " + h.name }

// Wait returns the configured health wait.
func (h *HTTP) Wait() WaitPolicy { return h.cfg.Wait }

// targetState is GET {base}/targets/{target}.
type targetState struct {
	Version string `json:"version"`
	Healthy bool   `json:"healthy"`
	Message string `json:"message,omitempty"`
}

// deployment is a deployer's deployment resource.
type deployment struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Version string `json:"version,omitempty"`
	Message string `json:"message,omitempty"`
}

// Current reads the target's version. Errors wrap ErrRejected (unknown
// target, refused request) or ErrBadVersion.
func (h *HTTP) Current(ctx context.Context, target string) (string, error) {
	var st targetState
	if err := h.do(ctx, http.MethodGet, []string{"targets", target}, "", nil, &st); err != nil {
		return "", fmt.Errorf("reading the version of target %s on %s: %w", target, h, err)
	}
	if err := checkVersion(st.Version); err != nil {
		return "", fmt.Errorf("target %s on %s reports version %q: %v: %w", target, h, clip.Ellipsis(st.Version, 200), err, ErrBadVersion)
	}
	return st.Version, nil
}

// Health reads the target's health.
func (h *HTTP) Health(ctx context.Context, target string) (Health, error) {
	var st targetState
	if err := h.do(ctx, http.MethodGet, []string{"targets", target}, "", nil, &st); err != nil {
		return Health{}, fmt.Errorf("reading the health of target %s on %s: %w", target, h, err)
	}
	return Health{Healthy: st.Healthy, Detail: clip.Ellipsis(st.Message, maxMessage)}, nil
}

// Deploy asks the deployer to deploy r.Version with r.Key as the
// Idempotency-Key, then polls the deployment until it succeeded (nil),
// failed (ErrFailed with the deployer's message) or DeployTimeout passed
// (ErrTimeout). A POST that fails on the way (5xx, a lost connection) can be
// repeated with the same key: the deployer answers with the deployment it
// already started instead of deploying twice.
func (h *HTTP) Deploy(ctx context.Context, r Request) error {
	what := fmt.Sprintf("deploying %s onto target %s on %s", r.Version, r.Target, h)
	if err := checkRequest(r); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if r.Key == "" {
		return fmt.Errorf("%s: an idempotency key is required: %w", what, ErrRejected)
	}
	var d deployment
	if err := h.do(ctx, http.MethodPost, []string{"targets", r.Target, "deploy"}, r.Key, map[string]string{"version": r.Version}, &d); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d.ID == "" {
		return fmt.Errorf("%s: the deployer's answer has no deployment id", what)
	}
	if d.Version != "" && d.Version != r.Version {
		// The key was used before for another version: never take that
		// deployment for ours.
		return fmt.Errorf("%s: the deployer answered with deployment %s of version %s for key %s: %w", what, d.ID, d.Version, r.Key, ErrRejected)
	}
	start := time.Now()
	var pollErr error
	for {
		switch d.Status {
		case StatusSucceeded:
			return nil
		case StatusFailed:
			return fmt.Errorf("%s: deployment %s %w: %s", what, d.ID, ErrFailed, quoteTail(clip.Ellipsis(d.Message, maxMessage)))
		case StatusPending, StatusRunning:
		default:
			return fmt.Errorf("%s: deployment %s has unknown status %q (want %s, %s, %s or %s)", what, d.ID, clip.Ellipsis(d.Status, 40),
				StatusPending, StatusRunning, StatusSucceeded, StatusFailed)
		}
		if r.Progress != nil {
			r.Progress(fmt.Sprintf("deployment %s %s", d.ID, d.Status))
		}
		if time.Since(start)+h.cfg.PollInterval > h.cfg.DeployTimeout {
			last := ""
			if pollErr != nil {
				last = "; last poll: " + pollErr.Error()
			}
			return fmt.Errorf("%s: deployment %s still %s after %s: %w%s", what, d.ID, d.Status, h.cfg.DeployTimeout, ErrTimeout, last)
		}
		t := time.NewTimer(h.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
		var next deployment
		if err := h.do(ctx, http.MethodGet, []string{"targets", r.Target, "deployments", d.ID}, "", nil, &next); err != nil {
			if errors.Is(err, ErrRejected) || ctx.Err() != nil {
				return fmt.Errorf("%s: polling deployment %s: %w", what, d.ID, err)
			}
			// A deployer restarting is no reason to give up on the
			// deployment; the deploy timeout still bounds the wait.
			pollErr = err
			continue
		}
		pollErr = nil
		next.ID = d.ID
		d = next
	}
}

// do sends one request and decodes a 2xx JSON answer into out. Path
// segments are escaped one by one, so a target name can never add a path
// level. Errors: ErrRejected for 4xx answers other than 408 and 429;
// plain errors (worth retrying) for the rest.
func (h *HTTP) do(ctx context.Context, method string, segments []string, key string, body, out any) error {
	u := *h.base
	var raw strings.Builder
	raw.WriteString(h.base.EscapedPath())
	plain := u.Path
	for _, s := range segments {
		raw.WriteString("/" + url.PathEscape(s))
		plain += "/" + s
	}
	u.Path, u.RawPath = plain, raw.String()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if h.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.cfg.Token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u.Path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, u.Path, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("%s %s: the answer is larger than %d bytes", method, u.Path, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := fmt.Sprintf("%s %s: %s: %s", method, u.Path, resp.Status, quoteTail(clip.Ellipsis(strings.TrimSpace(string(data)), maxMessage)))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return fmt.Errorf("%s: %w", msg, ErrRejected)
		}
		return errors.New(msg)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the expected JSON: %v", method, u.Path, err)
	}
	return nil
}

// unwrapURLError drops url.Error's quoting of the whole URL, which is
// already in the message.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
