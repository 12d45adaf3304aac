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
func StartCPU() CPU {
	cpu, faults := usage()
	return CPU{wall: time.Now(), cpu: cpu, faults: faults}
}

// Faults is the number of page faults (first touches of memory the
// process had not used yet) since StartCPU.
func (c CPU) Faults() int64 {
	_, faults := usage()
	return faults - c.faults
}

// Cores is the average number of cores busy since StartCPU.
func (c CPU) Cores() float64 {
	cpu, _ := usage()
	return (cpu - c.cpu).Seconds() / time.Since(c.wall).Seconds()
}

// usage is the CPU time this process has used, and its page faults.
func usage() (time.Duration, int64) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), int64(ru.Minflt)
}
