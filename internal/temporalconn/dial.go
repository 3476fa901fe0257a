// Package temporalconn connects to Temporal the way Temporal's own tools do:
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API key variables and the
// optional TOML profile file, through the SDK's envconfig package. The
// worker and the CLI share it so they always agree on where Temporal is.
package temporalconn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"

	"github.com/rollbook/rollbook/internal/codec"
	"github.com/rollbook/rollbook/internal/tracing"
)

// ErrUnreachable wraps every failure to reach the Temporal frontend.
var ErrUnreachable = errors.New("cannot reach Temporal")

// Options loads client options from the environment and the profile file.
// When ROLLBOOK_CODEC_KEY_FILE or ROLLBOOK_CODEC_KEY is set, payloads and
// failure messages are encrypted with those keys (see internal/codec). When
// tracing is installed (internal/tracing), the options carry Temporal's
// OpenTelemetry interceptor.
func Options() (client.Options, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return client.Options{}, fmt.Errorf("loading Temporal client settings (TEMPORAL_* variables, profile file): %w", err)
	}
	c, err := codec.FromEnv()
	if err != nil {
		return client.Options{}, fmt.Errorf("payload encryption (%s, %s): %w", codec.EnvKeyFile, codec.EnvKey, err)
	}
	if c != nil {
		c.Apply(&opts)
	}
	// With tracing on (OTEL_* variables, see internal/tracing), the client
	// and the workers built on it carry the span context through Temporal
	// headers, so that one trace covers a deploy from the CLI to the
	// activities.
	ic, err := tracing.Interceptor()
	if err != nil {
		return client.Options{}, err
	}
	if ic != nil {
		opts.Interceptors = append(opts.Interceptors, ic)
	}
	if opts.HostPort == "" {
		opts.HostPort = client.DefaultHostPort
	}
	if opts.Namespace == "" {
		opts.Namespace = client.DefaultNamespace
	}
	return opts, nil
}

// Dial connects and checks the server answers within timeout. Errors wrap
// ErrUnreachable and name the address and namespace tried.
func Dial(ctx context.Context, logger log.Logger, timeout time.Duration, mutate func(*client.Options)) (client.Client, client.Options, error) {
	opts, err := Options()
	if err != nil {
		return nil, opts, err
	}
	opts.Logger = logger
	if mutate != nil {
		mutate(&opts)
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.DialContext(dctx, opts)
	if err != nil {
		return nil, opts, fmt.Errorf("%w at %s (namespace %s): %v — is the server running? set TEMPORAL_ADDRESS", ErrUnreachable, opts.HostPort, opts.Namespace, err)
	}
	return c, opts, nil
}
