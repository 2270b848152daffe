package ops

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// MemoryLimitRatio is the share of the container's memory limit the Go
// runtime is asked to stay under, leaving room for what the runtime does
// not count (thread stacks, fragmentation) before the kernel's OOM killer.
const MemoryLimitRatio = 0.9

// ContainerMemoryLimit reads the memory limit of the container from its
// cgroup filesystem (cgroup v2 memory.max, else v1
// memory/memory.limit_in_bytes). ok is false when there is no limit or
// no cgroup to read it from.
func ContainerMemoryLimit(cgroup fs.FS) (limit int64, ok bool) {
	for _, name := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := fs.ReadFile(cgroup, name)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 reports "unlimited" as a huge page-aligned number.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// ApplyMemoryLimit sets the Go runtime's soft memory limit (through set,
// debug.SetMemoryLimit in production) to MemoryLimitRatio of the
// container's limit, so that the garbage collector works harder as the
// worker nears the limit instead of the pod being OOM-killed. An explicit
// GOMEMLIMIT wins and nothing is changed. It returns what it did, for the
// log, or "" when it did nothing.
func ApplyMemoryLimit(getenv func(string) string, cgroup fs.FS, set func(int64) int64) string {
	if getenv("GOMEMLIMIT") != "" {
		return ""
	}
	limit, ok := ContainerMemoryLimit(cgroup)
	if !ok {
		return ""
	}
	soft := int64(float64(limit) * MemoryLimitRatio)
	set(soft)
	return fmt.Sprintf("Go memory limit %d MiB: %.0f%% of the container's %d MiB (set GOMEMLIMIT to override)",
		soft>>20, MemoryLimitRatio*100, limit>>20)
}

// GCPercent is the garbage collector's target (GOGC) the worker runs with
// unless GOGC is set. Go's default of 100 lets the heap grow to twice what
// is live; the worker's live heap is mostly long-lived caches and the
// records in flight. At 50 the collector runs twice as often: measured
// with cmd/bench (see README), that cost 5–7 more CPU-seconds per million
// events, about 6% of the worker's CPU, and cut its peak RSS by a fifth.
// Prometheus made the same change in v2.53 for the same reason.
const GCPercent = 50

// ApplyGCPercent sets the garbage collector's target (through set,
// debug.SetGCPercent in production) to GCPercent. An explicit GOGC wins and
// nothing is changed. It returns what it did, for the log, or "".
func ApplyGCPercent(getenv func(string) string, set func(int) int) string {
	if getenv("GOGC") != "" {
		return ""
	}
	set(GCPercent)
	return fmt.Sprintf("Go GC target %d%% (set GOGC to override)", GCPercent)
}

// TuneRuntime applies ApplyGCPercent and ApplyMemoryLimit to this process,
// reading the cgroup filesystem at /sys/fs/cgroup. It returns what it did,
// for the log.
func TuneRuntime(getenv func(string) string) []string {
	var notes []string
	for _, n := range []string{
		ApplyGCPercent(getenv, debug.SetGCPercent),
		ApplyMemoryLimit(getenv, os.DirFS("/sys/fs/cgroup"), debug.SetMemoryLimit),
	} {
		if n != "" {
			notes = append(notes, n)
		}
	}
	return notes
}
