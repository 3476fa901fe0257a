package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/attribute"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/rollbook/rollbook/internal/signing"
	"github.com/rollbook/rollbook/internal/tracing"
	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

type deployFlags struct {
	version          string
	wait             bool
	jsonOut          bool
	waitForLock      bool
	timeout          time.Duration
	abortOnInterrupt bool
	signKey          string
}

func (a *app) deployCommand() *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy FILE --version V",
		Short: "Start a deployment (and with --wait, follow it to its outcome)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.deploy(cmd.Context(), args[0], f)
		},
	}
	cmd.Flags().StringVar(&f.version, "version", "", "version being deployed (required)")
	cmd.Flags().BoolVar(&f.wait, "wait", false, "wait for the outcome and exit with its code")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print JSON (JSON lines while waiting)")
	cmd.Flags().BoolVar(&f.waitForLock, "wait-for-lock", false, "wait for a running deployment of the service to end instead of exiting 5")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 0, "give up waiting after this long (exit 6); 0 waits forever")
	cmd.Flags().BoolVar(&f.abortOnInterrupt, "abort-on-interrupt", false, "on Ctrl-C/SIGTERM abort the deployment instead of detaching")
	cmd.Flags().StringVar(&f.signKey, "sign-key", "", "Ed25519 private key (PEM) to sign the bundle with; default $"+signing.EnvKeyFile)
	return cmd
}

func origin() runbook.Origin {
	o := runbook.Origin{}
	if u, err := user.Current(); err == nil {
		o.User = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		o.Host = h
	}
	// GitHub Actions, then GitLab CI.
	if os.Getenv("GITHUB_ACTIONS") == "true" {
		o.CIJob = os.Getenv("GITHUB_WORKFLOW") + "/" + os.Getenv("GITHUB_JOB") + "#" + os.Getenv("GITHUB_RUN_NUMBER")
		o.CIURL = os.Getenv("GITHUB_SERVER_URL") + "/" + os.Getenv("GITHUB_REPOSITORY") + "/actions/runs/" + os.Getenv("GITHUB_RUN_ID")
		if actor := os.Getenv("GITHUB_ACTOR"); actor != "" {
			o.User = actor
		}
	} else if os.Getenv("GITLAB_CI") == "true" {
		o.CIJob = os.Getenv("CI_PROJECT_PATH") + "/" + os.Getenv("CI_JOB_NAME") + "#" + os.Getenv("CI_JOB_ID")
		o.CIURL = os.Getenv("CI_JOB_URL")
		if u := os.Getenv("GITLAB_USER_LOGIN"); u != "" {
			o.User = u
		}
	}
	return o
}

func (a *app) deploy(ctx context.Context, file string, f deployFlags) (err error) {
	// The root of the deployment's trace when tracing is on (internal/tracing).
	ctx, span := tracing.Start(ctx, "rollbook deploy", attribute.String("rollbook.runbook", file), attribute.String("rollbook.version", f.version))
	defer func() { tracing.End(span, err) }()
	if f.version == "" {
		return exitf(ExitBadInput, "--version is required (the version being deployed)")
	}
	b, err := runbook.BuildBundle(file, f.version, origin())
	if err != nil {
		fmt.Fprintln(a.errOut, err)
		return exitf(ExitBadInput, "%s: nothing was started", file)
	}
	span.SetAttributes(attribute.String("rollbook.service", b.Runbook.Service))
	if err := signBundle(b, f.signKey); err != nil {
		return err
	}
	c, copts, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()

	id := workflows.WorkflowID(b.Runbook.Service)
	opts := workflows.StartOptions(b, a.taskQueue)
	var run client.WorkflowRun
	for {
		run, err = c.ExecuteWorkflow(ctx, opts, workflows.WorkflowType, b)
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			if !f.waitForLock {
				return exitf(ExitBusy, "another deployment of %s is running (workflow %s, run %s); nothing was started — wait for it, abort it with `rollbook abort %s`, or pass --wait-for-lock",
					b.Runbook.Service, id, already.RunId, b.Runbook.Service)
			}
			fmt.Fprintf(a.errOut, "waiting for the running deployment of %s to end…\n", b.Runbook.Service)
			if err := c.GetWorkflow(ctx, id, already.RunId).Get(ctx, nil); err != nil && ctx.Err() != nil {
				return exitf(ExitUnreachable, "gave up waiting for the lock: %v", ctx.Err())
			}
			continue
		}
		if err != nil {
			if isUnavailable(err) {
				return exitf(ExitUnreachable, "starting the deployment: %v", err)
			}
			return exitf(ExitBadInput, "starting the deployment of %s: %v", b.Runbook.Service, err)
		}
		break
	}
	link := a.webLink(copts.Namespace, id, run.GetRunID())
	if f.jsonOut {
		a.jsonLine(map[string]any{"event": "started", "workflowId": id, "runId": run.GetRunID(), "service": b.Runbook.Service, "version": b.Version, "hash": b.Hash, "signedBy": signedBy(b), "webUI": link})
	} else {
		fmt.Fprintf(a.out, "Web UI: %s\n", link)
		fmt.Fprintf(a.out, "started deployment of %s %s (workflow %s, run %s)\n", b.Runbook.Service, b.Version, id, run.GetRunID())
	}
	if !f.wait {
		return nil
	}
	return a.follow(ctx, c, id, run.GetRunID(), f, &b.Runbook, link)
}

// follow prints progress until the run ends and maps its outcome to an exit
// code. Ctrl-C detaches (the deployment goes on) unless abortOnInterrupt.
// On a terminal the progress is a live view (tty.go), otherwise plain or
// JSON lines (progress.go).
func (a *app) follow(ctx context.Context, c client.Client, id, runID string, f deployFlags, rb *runbook.Runbook, link string) error {
	src := &temporalSource{c: c, id: id, runID: runID}
	return a.watch(ctx, src, a.newProgressView(f.jsonOut, rb, link, src), id, f)
}

type outcome struct {
	res workflows.Result
	err error
}

// watch polls src for the status until the run ends, feeding p.
func (a *app) watch(ctx context.Context, src deploymentSource, p progressView, id string, f deployFlags) error {
	defer p.close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f.timeout > 0 {
		wctx, cancel = context.WithTimeout(wctx, f.timeout)
		defer cancel()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	done := make(chan outcome, 1)
	go func() {
		r, err := src.Result(wctx)
		done <- outcome{r, err}
	}()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case o := <-done:
			return a.ended(wctx, o, p, id, f)
		case s := <-sigs:
			if err := a.interrupted(s, src, p, id, &f); err != nil {
				return err
			}
		case <-tick.C:
			qctx, qcancel := context.WithTimeout(wctx, 2*time.Second)
			st, err := src.Status(qctx)
			qcancel()
			if err == nil {
				p.update(st)
			}
		}
	}
}

// ended prints the outcome and maps it to the exit code.
func (a *app) ended(wctx context.Context, o outcome, p progressView, id string, f deployFlags) error {
	if o.err != nil {
		p.close()
		if wctx.Err() != nil {
			return exitf(ExitUnreachable, "gave up waiting after %s; the deployment goes on: `rollbook status %s`", f.timeout, strings.TrimPrefix(id, workflows.WorkflowIDPrefix))
		}
		if isUnavailable(o.err) {
			return exitf(ExitUnreachable, "lost contact with Temporal while waiting: %v", o.err)
		}
		return exitf(ExitNeedsHuman, "deployment %s failed: %v", id, o.err)
	}
	p.final(o.res)
	return outcomeExit(o.res)
}

// interrupted handles Ctrl-C/SIGTERM: the first one aborts when
// --abort-on-interrupt was given (and returns nil: the wait goes on), any
// other detaches.
func (a *app) interrupted(s os.Signal, src deploymentSource, p progressView, id string, f *deployFlags) error {
	service := strings.TrimPrefix(id, workflows.WorkflowIDPrefix)
	if f.abortOnInterrupt {
		p.notice(fmt.Sprintf("\n%s: aborting the deployment of %s…\n", s, service))
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := src.Abort(sctx, workflows.AbortSignal{Reason: "CLI interrupted (" + s.String() + ")", By: origin().User})
		scancel()
		if err != nil {
			p.close()
			return exitf(ExitNeedsHuman, "could not send abort: %v", err)
		}
		f.abortOnInterrupt = false // a second interrupt detaches
		return nil
	}
	p.close()
	fmt.Fprintf(a.errOut, "\n%s: detached; the deployment goes on. Follow it with `rollbook status %s`, stop it with `rollbook abort %s`.\n", s, service, service)
	return exitf(ExitUnreachable, "detached from %s", id)
}

func outcomeExit(r workflows.Result) error {
	switch r.Outcome {
	case workflows.OutcomeSucceeded, workflows.OutcomeReverted:
		return nil
	case workflows.OutcomeRefused:
		// The preflight refused it before the first change.
		return &exitError{code: ExitBadInput, err: fmt.Errorf("refused by the preflight, nothing was changed: %s", r.Reason)}
	case workflows.OutcomeRolledBack:
		return &exitError{code: ExitRolledBack, err: fmt.Errorf("rolled back: %s", r.Reason)}
	case workflows.OutcomeAborted:
		return &exitError{code: ExitAborted, err: fmt.Errorf("aborted and rolled back: %s", r.Reason)}
	default:
		return &exitError{code: ExitNeedsHuman, err: fmt.Errorf("%s: %s — a human is needed", r.Outcome, r.Reason)}
	}
}

func queryStatus(ctx context.Context, c client.Client, id, runID string) (workflows.Status, error) {
	var st workflows.Status
	v, err := c.QueryWorkflow(ctx, id, runID, workflows.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

func isUnavailable(err error) bool {
	var u *serviceerror.Unavailable
	var dl *serviceerror.DeadlineExceeded
	return errors.As(err, &u) || errors.As(err, &dl) || errors.Is(err, context.DeadlineExceeded)
}

func (a *app) jsonLine(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(a.out, string(b))
}
