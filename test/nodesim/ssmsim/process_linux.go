//go:build linux

package ssmsim

import (
	"syscall"
	"unsafe"
)

// canWaitNoReap: waitExited really waits, so the group can be killed before reaping.
const canWaitNoReap = true

// waitExited blocks until process pid has exited, without reaping it
// (waitid with WNOWAIT, as os/exec does internally). While the process is an
// unreaped zombie its pid, and so its process group id, cannot be reused,
// which makes killing the group afterwards safe.
func waitExited(pid int) {
	const (
		pPID    = 1          // P_PID
		wNoWait = 0x01000000 // WNOWAIT
	)
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|wNoWait, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}
