package natscluster

import "syscall"

// sysProcAttr makes the kernel kill a node process when the thread of the
// parent that started it dies, so nodes do not outlive a crashed test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
