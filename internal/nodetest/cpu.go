package nodetest

import (
	"syscall"
	"time"
)

// CPU measures what the benchmarks report beside their rates: how many
// cores the whole process (every in-process node) kept busy.
type CPU struct {
	wall time.Time
	cpu  time.Duration
}

// StartCPU starts a measure.
func StartCPU() CPU { return CPU{wall: time.Now(), cpu: cpuTime()} }

// Cores is the average number of cores busy since StartCPU.
func (c CPU) Cores() float64 {
	return (cpuTime() - c.cpu).Seconds() / time.Since(c.wall).Seconds()
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
