package nodetest

import (
	"syscall"
	"time"
)

// CPU measures what the benchmarks report beside their rates: how many
// cores the whole process (every in-process node) kept busy.
type CPU struct {
	wall   time.Time
	cpu    time.Duration
	faults int64
}

// StartCPU starts a measure.
func StartCPU() CPU { return CPU{wall: time.Now(), cpu: cpuTime(), faults: minorFaults()} }

// Faults is the number of page faults (first touches of memory the
// process had not used yet) since StartCPU.
func (c CPU) Faults() int64 { return minorFaults() - c.faults }

func minorFaults() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return int64(ru.Minflt)
}

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
