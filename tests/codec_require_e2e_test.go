package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/rollbook/rollbook/internal/codec"
	"github.com/rollbook/rollbook/internal/worker"
	"github.com/rollbook/rollbook/workflows"
)

const codecRequireTaskQueue = "rollbook-e2e-codec-require"

// TestE2ECodecRequireEncryption runs a worker with codec.requireEncryption
// on the real stack. A client without the key (the tests' plain client)
// can neither start a deployment — it fails at once, naming the refusal,
// and no activity is scheduled — nor steer one: its approve and
// abort signals are recorded as ignored, and the deployment keeps waiting
// until the CLI, which holds the key, aborts it (so one refused signal
// does not block the signals after it).
func TestE2ECodecRequireEncryption(t *testing.T) {
	key := make([]byte, codec.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "payload-keys")
	require.NoError(t, os.WriteFile(keyFile, []byte("req-1:"+hex.EncodeToString(key)+"\n"), 0o600))
	t.Setenv(codec.EnvKeyFile, keyFile)

	w := startInProcessWorker(t, codecRequireTaskQueue, func(cfg *worker.Config) {
		cfg.Codec = &worker.CodecConfig{KeyFile: keyFile, RequireEncryption: true}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// 1. A plaintext start: the SDK cannot decode the input, the workflow
	// fails at once, and nothing runs.
	plainSvc := "e2e-codec-plain"
	plainID := workflows.WorkflowID(plainSvc)
	run, err := tclient.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: plainID, TaskQueue: codecRequireTaskQueue},
		"Deploy", map[string]any{"runbook": map[string]any{"service": plainSvc}})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = tclient.TerminateWorkflow(context.Background(), plainID, run.GetRunID(), "e2e: plaintext start refused")
	})
	// The worker encrypts failure messages too: read it with the key.
	kc, err := codec.Load(codec.Source{KeyFile: keyFile})
	require.NoError(t, err)
	fc := temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: kc.DataConverter(), EncodeCommonAttributes: true})
	var why string
	require.Eventually(t, func() bool {
		for _, e := range rawHistory(t, plainID) {
			if a := e.GetWorkflowExecutionFailedEventAttributes(); a != nil {
				why = fc.FailureToError(a.GetFailure()).Error()
				return true
			}
		}
		return false
	}, 20*time.Second, 200*time.Millisecond, "the deployment fails at once on its plaintext input")
	require.Contains(t, why, "refusing an unencrypted payload")
	for _, e := range rawHistory(t, plainID) {
		require.Nil(t, e.GetActivityTaskScheduledEventAttributes(), "no activity ran for a plaintext start")
	}

	// 2. An encrypted deployment waiting for approval ignores plaintext
	// signals and still obeys the encrypted ones after them.
	f := newFixture(t, "e2e-codec-require")
	rb := filepath.Join(f.dir, f.service+".yaml")
	require.NoError(t, os.WriteFile(rb, []byte(fmt.Sprintf(`apiVersion: rollbook/v1
service: %s
steps:
  - name: flag
    consul:
      set:
        %sflag: "on"
  - name: gate
    pause: {approval: true}
`, f.service, f.prefix)), 0o644))
	d := startCLI(t, "deploy", rb, "--version", "v2", "--wait", "--task-queue", codecRequireTaskQueue)
	waitPhaseWith(t, w.Client, f.service, workflows.PhasePaused, 60*time.Second)

	id := workflows.WorkflowID(f.service)
	require.NoError(t, tclient.SignalWorkflow(ctx, id, "", workflows.SignalApprove, map[string]string{"step": "gate", "by": "mallory"}))
	require.NoError(t, tclient.SignalWorkflow(ctx, id, "", workflows.SignalAbort, map[string]string{"reason": "plaintext", "by": "mallory"}))
	var st workflows.Status
	require.Eventually(t, func() bool {
		st = waitPhaseWith(t, w.Client, f.service, workflows.PhasePaused, 10*time.Second)
		return len(st.Ignored) >= 2
	}, 20*time.Second, 200*time.Millisecond, "both plaintext signals are recorded as ignored")
	for _, ig := range st.Ignored {
		assert.Contains(t, ig.Why, codec.EncodingRefused, "signal %s", ig.Signal)
	}
	assert.Equal(t, workflows.PhasePaused, st.Phase, "a plaintext approve or abort changes nothing")

	out, code := cli(t, "abort", f.service, "--reason", "encrypted abort")
	require.Equal(t, 0, code, out)
	out, code = d.wait(t, 60*time.Second)
	require.Equal(t, 3, code, "the encrypted abort after the refused signals is obeyed: %s", out)
	_, ok := kv(t, f.prefix+"flag")
	assert.False(t, ok, "rolled back")
}
