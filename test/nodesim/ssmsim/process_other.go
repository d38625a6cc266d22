//go:build !linux

package ssmsim

// Without waitid(WNOWAIT) the group cannot be killed safely between exit and
// reaping, so leftovers of a script are left alone (the simulator targets Linux).
const canWaitNoReap = false

func waitExited(int) {}
