package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rollbook/rollbook/internal/codec"
	"github.com/rollbook/rollbook/internal/devstack"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

const codecTaskQueue = "rollbook-e2e-codec"

// TestE2EPayloadEncryption deploys with payload encryption on (worker and
// CLI share a key file), aborts, and then reads the workflow's history the
// way anyone with access to Temporal could — a plain client without the
// codec — to prove that the migration SQL, the Consul value and the abort
// reason are not there in clear. The CLI (which has the key) shows the
// reason in the outcome, and `rollbook codec-server` decodes the history's
// payloads back for someone holding its bearer token.
func TestE2EPayloadEncryption(t *testing.T) {
	mark := func(prefix string) string {
		b := make([]byte, 6)
		_, err := rand.Read(b)
		require.NoError(t, err)
		return prefix + hex.EncodeToString(b)
	}
	sqlMark, consulMark, reasonMark := mark("codec_probe_"), mark("consul-secret-"), mark("abort-reason-")

	key := make([]byte, codec.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "payload-keys")
	require.NoError(t, os.WriteFile(keyFile, []byte("# e2e\ne2e-1:"+hex.EncodeToString(key)+"\n"), 0o600))
	// The CLI processes this test starts read the same keys.
	t.Setenv(codec.EnvKeyFile, keyFile)

	// The worker takes its key from its configuration.
	w := startInProcessWorker(t, codecTaskQueue, func(cfg *worker.Config) {
		cfg.Codec = &worker.CodecConfig{KeyFile: keyFile, KeyID: "e2e-1"}
	})

	f := newFixture(t, "e2e-codec")
	require.NoError(t, os.WriteFile(filepath.Join(f.dir, "migrations", "00004_codec_probe.sql"),
		[]byte("-- +goose Up\nCREATE TABLE "+sqlMark+" (id INT);\n-- +goose Down\nDROP TABLE "+sqlMark+";\n"), 0o644))
	rb := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(t, os.WriteFile(rb, []byte(fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
steps:
  - name: expand-schema
    migrate: {database: payments, dir: migrations}
  - name: secret-config
    consul:
      set:
        %ssecret: %q
  - name: watch
    verify:
      duration: 60s
      interval: 1s
      checks:
        - name: healthz
          http: {endpoint: edge, path: /healthz}
`, f.service, f.prefix, consulMark)), 0o644))

	d := startCLI(t, "deploy", rb, "--version", "v2", "--wait", "--task-queue", codecTaskQueue)
	// The tests' shared client has no codec and could not read the status
	// query's answer: ask through the worker's client, which has the key.
	waitPhaseWith(t, w.Client, f.service, workflows.PhaseVerifying, 60*time.Second)
	require.True(t, tableExists(t, sqlMark), "the migration ran (the worker decrypted the bundle)")
	v, _ := kv(t, f.prefix+"secret")
	require.Equal(t, consulMark, v, "the Consul value arrived decrypted")

	out, code := cli(t, "abort", f.service, "--reason", reasonMark)
	require.Equal(t, 0, code, out)
	out, code = d.wait(t, 60*time.Second)
	require.Equal(t, 3, code, out)
	assert.Contains(t, out, reasonMark, "the CLI decrypts the outcome")
	assert.False(t, tableExists(t, sqlMark), "rolled back")
	_, ok := kv(t, f.prefix+"secret")
	assert.False(t, ok, "rolled back")

	out, code = cli(t, "status", f.service)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, reasonMark, "rollbook status decrypts the result")

	// The raw history, as stored by Temporal.
	events := rawHistory(t, workflows.WorkflowID(f.service))
	var raw bytes.Buffer
	for _, e := range events {
		b, err := proto.Marshal(e)
		require.NoError(t, err)
		raw.Write(b)
		j, err := protojson.Marshal(e)
		require.NoError(t, err)
		raw.Write(j)
	}
	for what, secret := range map[string]string{"migration SQL": sqlMark, "Consul value": consulMark, "abort reason": reasonMark} {
		assert.False(t, bytes.Contains(raw.Bytes(), []byte(secret)), "the %s (%s) is in the history in clear", what, secret)
		// Nor base64-encoded, as JSON renderings of payload data are.
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
			for shift := 0; shift < 3; shift++ {
				frag := enc.EncodeToString([]byte(strings.Repeat("x", shift) + secret))[4:20]
				assert.False(t, bytes.Contains(raw.Bytes(), []byte(frag)), "the %s is in the history base64-encoded", what)
			}
		}
	}
	// The Web UI summary goes through the codec too.
	assert.False(t, bytes.Contains(raw.Bytes(), []byte("deploy "+f.service+" v2")), "the static summary is in the history in clear")
	assert.True(t, bytes.Contains(raw.Bytes(), []byte(codec.MetadataEncodingEncrypted)), "payloads are marked %s", codec.MetadataEncodingEncrypted)
	assert.True(t, bytes.Contains(raw.Bytes(), []byte("e2e-1")), "payloads name their key")

	// Without the key, the SDK's default converter cannot read the input.
	started := events[0].GetWorkflowExecutionStartedEventAttributes()
	require.NotNil(t, started)
	input := started.GetInput().GetPayloads()
	require.NotEmpty(t, input)
	assert.Equal(t, codec.MetadataEncodingEncrypted, string(input[0].GetMetadata()["encoding"]))
	var signal []*commonpb.Payload
	for _, e := range events {
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.SignalAbort {
			signal = a.GetInput().GetPayloads()
		}
	}
	require.NotEmpty(t, signal, "the abort signal is in the history")

	// The codec server decodes them for whoever holds the token.
	const token = "e2e-codec-token"
	// The token comes from the environment, never the command line (ps).
	t.Setenv("ROLLBOOK_CODEC_SERVER_TOKEN", token)
	srv := startCodecServer(t, "--origin", "http://127.0.0.1:8233")
	decoded := postDecode(t, srv+"/default/decode", token, input)
	assert.Contains(t, decoded, sqlMark, "the bundle's migration file, decoded")
	assert.Contains(t, decoded, consulMark, "the runbook's Consul value, decoded")
	assert.Contains(t, postDecode(t, srv+"/decode", token, signal), reasonMark, "the abort signal, decoded")

	// Temporal's own CLI, pointed at the codec server, shows the history
	// decoded: the protocol is the one the Web UI speaks too.
	temporalBin := os.Getenv("ROLLBOOK_TEMPORAL_BIN")
	if temporalBin == "" {
		temporalBin = filepath.Join(devstack.ToolsDir(), "temporal-"+devstack.TemporalCLIVersion, "temporal")
	}
	show := exec.Command(temporalBin, "workflow", "show", "--address", stack.TemporalAddress, "--namespace", devstack.Namespace,
		"--workflow-id", workflows.WorkflowID(f.service), "--output", "json",
		"--codec-endpoint", srv, "--codec-auth", "Bearer "+token)
	showOut, err := show.CombinedOutput()
	require.NoError(t, err, "%s", showOut)
	shown := jsonStringsDecoded(t, showOut)
	assert.True(t, strings.Contains(shown, reasonMark), "temporal workflow show --codec-endpoint decodes the abort signal")
	assert.True(t, strings.Contains(shown, consulMark), "temporal workflow show --codec-endpoint decodes the Consul value")
	assert.True(t, strings.Contains(shown, sqlMark), "temporal workflow show --codec-endpoint decodes the migration")
	assert.False(t, strings.Contains(shown, codec.MetadataEncodingEncrypted), "nothing left encrypted")

	// Without the token: nothing.
	req, err := http.NewRequest(http.MethodPost, srv+"/decode", bytes.NewReader(payloadsJSON(t, input)))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.NotContains(t, string(body), sqlMark)
}

// jsonStringsDecoded returns every string of a JSON document, with the
// base64 "data" fields of payloads decoded.
func jsonStringsDecoded(t *testing.T, doc []byte) string {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(doc, &v), "not JSON: %.200s", doc)
	var b strings.Builder
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(k, e)
			}
		case []any:
			for _, e := range v {
				walk(key, e)
			}
		case string:
			b.WriteString(v)
			b.WriteByte('\n')
			if key == "data" {
				if d, err := base64.StdEncoding.DecodeString(v); err == nil {
					b.Write(d)
					b.WriteByte('\n')
				}
			}
		}
	}
	walk("", v)
	return b.String()
}

// waitPhaseWith is waitPhase through a given client (one with the codec).
func waitPhaseWith(t *testing.T, c client.Client, service string, phase workflows.Phase, timeout time.Duration) workflows.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last workflows.Status
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		v, err := c.QueryWorkflow(ctx, workflows.WorkflowID(service), "", workflows.QueryStatus)
		cancel()
		if err == nil {
			var st workflows.Status
			if err = v.Get(&st); err == nil {
				last = st
				if st.Phase == phase {
					return st
				}
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("deployment of %s did not reach phase %s within %s (last phase %q, last error %v)", service, phase, timeout, last.Phase, lastErr)
	return last
}

// rawHistory reads every event of the latest run with the tests' plain
// client: no codec, what the Temporal server stores.
func rawHistory(t *testing.T, workflowID string) []*historypb.HistoryEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	it := tclient.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		events = append(events, e)
	}
	require.NotEmpty(t, events)
	return events
}

// startCodecServer runs `rollbook codec-server` on a free port and returns
// its base URL; it is stopped (SIGTERM, by PID) when the test ends.
func startCodecServer(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(cliBin, append([]string{"codec-server", "--listen", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			assert.NoError(t, err, "codec server exit: %s", stderr.String())
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("codec server did not stop on SIGTERM")
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lines:
		t.Logf("rollbook codec-server: %s", line)
		m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(line)
		require.NotNil(t, m, "unexpected first line %q", line)
		host := strings.TrimPrefix(m[1], "http://")
		_, _, err := net.SplitHostPort(host)
		require.NoError(t, err)
		return m[1]
	case err := <-done:
		t.Fatalf("codec server exited: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("codec server printed nothing in 10s\n%s", stderr.String())
	}
	return ""
}

func payloadsJSON(t *testing.T, ps []*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	require.NoError(t, err)
	return b
}

// postDecode sends payloads to a codec server's decode endpoint the way the
// Web UI does, and returns the decoded payloads' data.
func postDecode(t *testing.T, url, token string, ps []*commonpb.Payload) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payloadsJSON(t, ps)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var out commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(body, &out))
	var data strings.Builder
	for _, p := range out.GetPayloads() {
		assert.NotEqual(t, codec.MetadataEncodingEncrypted, string(p.GetMetadata()["encoding"]), "still encrypted")
		data.Write(p.GetData())
		data.WriteByte('\n')
	}
	return data.String()
}
