package bench

import (
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/dspgo/dspgo/internal/proc"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 per second on Linux).
const clockTick = 10 * time.Millisecond

// usage is what the host process and the worker processes have consumed
// up to one moment.
type usage struct {
	hostCPU   time.Duration // user + system
	mallocs   uint64        // heap objects allocated by the host
	workerCPU time.Duration // user + system, summed over the workers
}

// readUsage reads the host's CPU time and allocation count and the
// workers' CPU time. It stops the world briefly (runtime.ReadMemStats),
// and /proc/<pid>/stat costs the kernel a pass over the worker's threads:
// it is read at a window's start and end only.
func readUsage(pids []int) usage {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	u := usage{hostCPU: time.Duration(cpuTime()), mallocs: m.Mallocs}
	for _, pid := range pids {
		if fields, _, err := proc.Stat(pid); err == nil {
			ut, _ := strconv.ParseUint(fields[11], 10, 64)
			st, _ := strconv.ParseUint(fields[12], 10, 64)
			u.workerCPU += time.Duration(ut+st) * clockTick
		}
	}
	return u
}

// footprint is the resident memory of the host and its workers, and the
// workers' thread count, at one moment.
type footprint struct {
	hostRSS, workersRSS uint64
	// hostHeap and hostStacks are the host's heap spans and goroutine
	// stacks in use (runtime.MemStats HeapInuse and StackInuse), parts of
	// hostRSS.
	hostHeap, hostStacks uint64
	// hostFree is heap memory the host's runtime freed and has not yet
	// returned to the system (HeapIdle − HeapReleased): resident, unless
	// the system took the pages back; hostRuntime is the runtime's own
	// (GCSys, MSpanSys, MCacheSys, BuckHashSys and OtherSys).
	hostFree, hostRuntime uint64
	workerThreads         int
}

// readFootprint reads the host's and the workers' resident memory and the
// workers' threads. It stops the world briefly (runtime.ReadMemStats).
func readFootprint(pids []int) footprint {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	f := footprint{hostRSS: proc.RSS(os.Getpid()), hostHeap: m.HeapInuse, hostStacks: m.StackInuse,
		hostFree: m.HeapIdle - m.HeapReleased, hostRuntime: m.GCSys + m.MSpanSys + m.MCacheSys + m.BuckHashSys + m.OtherSys}
	for _, pid := range pids {
		rss, threads := proc.Status(pid)
		f.workersRSS += rss
		f.workerThreads += threads
	}
	return f
}

// cpuTime is this process's user+system CPU time, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
