package testenv

import "syscall"

// dieWithParent makes the kernel SIGKILL the child when the test binary
// dies, even by SIGKILL or a panic, so no server outlives its tests.
// (Pdeathsig follows the thread that forked; the Go runtime does not retire
// threads outside LockOSThread, which this package never uses.)
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
