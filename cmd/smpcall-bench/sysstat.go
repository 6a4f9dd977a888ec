package main

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// procStats is what one process costs at a moment.
type procStats struct {
	// CPU is the process's user+system CPU time since it started.
	CPU time.Duration
	// Heap is the live heap right after a garbage collection.
	Heap uint64
	// Goroutines and Sockets (open socket descriptors) now.
	Goroutines, Sockets int
}

// cpuTime returns the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sockets counts the process's open socket descriptors (Linux: the links
// in /proc/self/fd that point at "socket:[inode]"); -1 where unknown.
func sockets() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// measure collects garbage first (twice: finalizers and pion's pools),
// so that Heap is what is live.
func measure() procStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return procStats{CPU: cpuTime(), Heap: ms.HeapAlloc, Goroutines: runtime.NumGoroutine(), Sockets: sockets()}
}
