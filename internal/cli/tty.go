package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/term"

	"github.com/rollbook/rollbook/runbook"
	"github.com/rollbook/rollbook/workflows"
)

// liveTerminal reports whether stdout is a terminal that can show the live
// view: CI logs (a pipe or a file) and TERM=dumb keep the plain lines.
func (a *app) liveTerminal() bool {
	if os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := a.out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// ttyView is the live view of `deploy --wait` on a terminal: a bubbletea
// program rendering inline (no alternate screen, so the last frame stays in
// the scrollback) and reading no keyboard input. Ctrl-C is left to the
// caller's signal handler, which detaches or aborts exactly as without a
// terminal. The final summary is printed under the last frame by the plain
// progress, so it reads the same as in CI.
//
// Bubble Tea v2, not v1: v1's package init queries the terminal for its
// background colour in any program that links it, so every rollbook
// command on a terminal sent a query, and under a pty that never answers
// `rollbook validate` took 5 s (docs/terminal.md).
type ttyView struct {
	src   deploymentSource
	prog  *tea.Program
	done  chan struct{}
	plain *progress
	once  sync.Once
}

func newTTYView(a *app, rb *runbook.Runbook, link string, src deploymentSource) *ttyView {
	m := newLiveModel(rb, link)
	v := &ttyView{
		prog: tea.NewProgram(m,
			tea.WithOutput(a.out),
			tea.WithInput(nil),
			tea.WithoutSignalHandler(),
		),
		src:   src,
		done:  make(chan struct{}),
		plain: newProgress(a, false),
	}
	go func() {
		defer close(v.done)
		if _, err := v.prog.Run(); err != nil {
			fmt.Fprintf(a.errOut, "rollbook: the live view stopped: %v\n", err)
		}
	}()
	return v
}

func (v *ttyView) update(st workflows.Status) { v.send(statusMsg{st: st}) }

func (v *ttyView) final(r workflows.Result) {
	// The result carries no measurements, and the round that ended the run
	// usually fell between two polls: one more status query (a closed
	// workflow still answers it) brings the last measurement on screen.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if st, err := v.src.Status(ctx); err == nil {
		v.send(statusMsg{st: st})
	}
	cancel()
	v.send(resultMsg{res: r})
	v.close()
	v.plain.final(r)
}

// notice prints msg above the live view, where it stays.
func (v *ttyView) notice(msg string) {
	if msg = strings.Trim(msg, "\n"); msg != "" {
		v.prog.Println(msg)
	}
}

func (v *ttyView) close() {
	v.once.Do(func() {
		v.prog.Quit()
		<-v.done
	})
}

// send delivers msg unless the program has already stopped (Send would
// then block forever).
func (v *ttyView) send(msg tea.Msg) {
	select {
	case <-v.done:
	default:
		v.prog.Send(msg)
	}
}
