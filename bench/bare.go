package main

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"
)

// The bare workflows are Temporal alone, with no rollbook code: the floor
// that rollbook's numbers are compared with. They run on the same server, in
// a worker inside this process with default options.

const (
	bareFloorWorkflow = "BenchFloor"
	bareSeqWorkflow   = "BenchSequence"
	bareActivity      = "BenchNoop"
	bareSignal        = "go"
)

var bareActivityOptions = workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second}

// benchFloor waits for one signal, runs one activity and ends.
func benchFloor(ctx workflow.Context) error {
	workflow.GetSignalChannel(ctx, bareSignal).Receive(ctx, nil)
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, bareActivityOptions), bareActivity).Get(ctx, nil)
}

// benchSequence runs n activities one after the other, like a small runbook.
func benchSequence(ctx workflow.Context, n int) error {
	actx := workflow.WithActivityOptions(ctx, bareActivityOptions)
	for i := 0; i < n; i++ {
		if err := workflow.ExecuteActivity(actx, bareActivity).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// activityStarts records when each floor workflow's activity began to run
// in this process (keyed by workflow ID).
var activityStarts sync.Map

func benchNoop(ctx context.Context) error {
	activityStarts.Store(activity.GetInfo(ctx).WorkflowExecution.ID, time.Now())
	return nil
}

func activityOptions(name string) activity.RegisterOptions {
	return activity.RegisterOptions{Name: name}
}
