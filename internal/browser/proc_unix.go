//go:build unix

package browser

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts Chromium in its own process group, so that Close
// can stop its zygote, renderer and utility processes with it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup kills the group of the Chromium this package started
// (its id is the browser process's id); helpers already gone are fine.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
