package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes a worker die with the harness, so an interrupted
// campaign leaves no worker behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
