//go:build !linux

package natscluster

import "syscall"

// sysProcAttr is empty outside Linux: a node process notices that its
// parent is gone by polling (see RunIfChild).
func sysProcAttr() *syscall.SysProcAttr { return nil }
