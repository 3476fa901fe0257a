package workflows

import (
	"encoding/json"
	"fmt"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/rollbook/rollbook/internal/clip"
)

// maxSignalText bounds the free text of a signal kept in state and history
// derived from it; a huge reason must not bloat the status.
const maxSignalText = 512

// listenForSignals starts one coroutine that receives every signal. It runs
// in a disconnected context so that retry and skip still arrive while a
// cancelled workflow rolls back. Payloads are decoded by hand from raw JSON
// so that a malformed payload is recorded as ignored instead of being
// dropped silently by the SDK.
func (d *deployment) listenForSignals(ctx workflow.Context) {
	sctx, _ := workflow.NewDisconnectedContext(ctx)
	names := []string{SignalAbort, SignalPause, SignalResume, SignalApprove, SignalRetry, SignalSkip}
	sel := workflow.NewSelector(sctx)
	for _, name := range names {
		name := name
		ch := workflow.GetSignalChannel(sctx, name)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, more bool) {
			// A RawValue always decodes: a payload the JSON converter
			// cannot read must be recorded as ignored, not dropped by the
			// SDK (which then blocks this callback and panics the task).
			var v converter.RawValue
			c.Receive(sctx, &v)
			raw, err := signalJSON(v)
			if err != nil {
				d.ignore(sctx, name, err.Error())
				return
			}
			d.onSignal(sctx, name, raw)
		})
	}
	workflow.Go(sctx, func(c workflow.Context) {
		for {
			sel.Select(c)
		}
	})
}

// signalJSON returns the JSON of a signal payload: json/plain data as is,
// nothing for a null or absent payload, an error for any other encoding.
func signalJSON(v converter.RawValue) (json.RawMessage, error) {
	p := v.Payload()
	if p == nil {
		return nil, nil
	}
	switch enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc {
	case converter.MetadataEncodingJSON:
		return p.GetData(), nil
	case converter.MetadataEncodingNil:
		return nil, nil
	default:
		return nil, fmt.Errorf("malformed payload: encoding %q is not JSON (send a JSON object)", clip.Ellipsis(enc, 40))
	}
}

func decodeSignal(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("malformed payload %s: %v", clip.Ellipsis(string(raw), 80), err)
	}
	return nil
}

func (d *deployment) onSignal(ctx workflow.Context, name string, raw json.RawMessage) {
	switch name {
	case SignalAbort:
		var s AbortSignal
		if err := decodeSignal(raw, &s); err != nil {
			d.ignore(ctx, name, err.Error())
			return
		}
		d.onAbort(ctx, s)
	case SignalApprove:
		var s ApproveSignal
		if err := decodeSignal(raw, &s); err != nil {
			d.ignore(ctx, name, err.Error())
			return
		}
		d.onApprove(ctx, s)
	default:
		var s OperatorSignal
		if err := decodeSignal(raw, &s); err != nil {
			d.ignore(ctx, name, err.Error())
			return
		}
		d.onOperator(ctx, name, s)
	}
}

func (d *deployment) onAbort(ctx workflow.Context, s AbortSignal) {
	switch {
	case d.finished:
		d.ignore(ctx, SignalAbort, "deployment already finished: "+string(d.status.Outcome))
		return
	case d.rollingBack:
		d.ignore(ctx, SignalAbort, "already rolling back")
		return
	case d.intent != nil:
		d.ignore(ctx, SignalAbort, "already stopping: "+d.intent.reason)
		return
	}
	reason := clip.Ellipsis(s.Reason, maxSignalText)
	if reason == "" {
		reason = "no reason given"
	}
	by := clip.Ellipsis(s.By, 128)
	msg := "aborted by operator: " + reason
	if by != "" {
		msg = fmt.Sprintf("aborted by %s: %s", by, reason)
	}
	d.stop(stopIntent{kind: stopAbort, reason: msg, step: d.status.CurrentStep})
}

func (d *deployment) onApprove(ctx workflow.Context, s ApproveSignal) {
	switch {
	case d.waitingApproval == "":
		d.ignore(ctx, SignalApprove, "no step is waiting for approval")
	case s.Step != "" && s.Step != d.waitingApproval:
		d.ignore(ctx, SignalApprove, fmt.Sprintf("step %q is not waiting for approval (waiting: %s)", clip.Ellipsis(s.Step, 100), d.waitingApproval))
	default:
		d.log.Info("Step approved", "step", d.waitingApproval, "by", clip.Ellipsis(s.By, 128))
		d.approved = true
	}
}

func (d *deployment) onOperator(ctx workflow.Context, name string, s OperatorSignal) {
	switch name {
	case SignalPause:
		switch {
		case d.finished || d.rollingBack || d.intent != nil:
			d.ignore(ctx, name, "a rollback or a finished deployment cannot be paused")
		case d.paused:
			d.ignore(ctx, name, "already paused")
		default:
			d.paused = true
			d.log.Info("Deployment will pause before its next step", "by", clip.Ellipsis(s.By, 128))
			d.updateDetails(ctx)
		}
	case SignalResume:
		if !d.paused {
			d.ignore(ctx, name, "not paused")
			return
		}
		d.paused = false
		d.updateDetails(ctx)
	case SignalRetry, SignalSkip:
		switch {
		case d.stuckStep == "":
			d.ignore(ctx, name, "no compensation is stuck")
		case d.decision != "":
			d.ignore(ctx, name, "a decision is already pending: "+d.decision)
		case name == SignalSkip && s.Step != "" && s.Step != d.stuckStep:
			d.ignore(ctx, name, fmt.Sprintf("step %q is not the stuck one (stuck: %s)", clip.Ellipsis(s.Step, 100), d.stuckStep))
		default:
			d.log.Info("Operator decision", "decision", name, "step", d.stuckStep, "by", clip.Ellipsis(s.By, 128))
			d.decision = name
		}
	}
}
