package devstack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// waitFor polls ready every interval until it succeeds, the process exits (an error with
// the end of its log) or ctx ends (an error with the last failure and the end of the log).
func waitFor(ctx context.Context, p *proc, interval time.Duration, ready func(context.Context) error) error {
	var last error
	for {
		if p != nil && p.exited() {
			return p.exitError()
		}
		if last = ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if p != nil {
				return fmt.Errorf("%w; last check: %v; last lines of %s:\n%s", ctx.Err(), last, p.log, tail(p.log, 15))
			}
			return fmt.Errorf("%w; last check: %v", ctx.Err(), last)
		case <-time.After(interval):
		case <-doneChan(p):
		}
	}
}

func doneChan(p *proc) <-chan struct{} {
	if p == nil || p.done == nil {
		return nil
	}
	return p.done
}

var httpClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// httpOK GETs url and wants a 200.
func httpOK(ctx context.Context, url string) error {
	_, err := httpGet(ctx, url)
	return err
}

func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}
