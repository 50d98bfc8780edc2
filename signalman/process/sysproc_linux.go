package process

import "syscall"

// Children get their own process group (a terminal's Ctrl-C reaches kplane
// only, which then stops them in order) and SIGTERM when kplane dies, so
// they deregister even if kplane is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
