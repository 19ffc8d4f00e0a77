package operator

import (
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// SetMemoryLimit gives the Go runtime a soft memory limit of ratio times
// the container's memory limit, so that the garbage collector works harder
// near the limit instead of letting transient garbage (initial lists, a
// burst of reconciles) grow the heap until the container is OOM-killed. It
// does nothing when GOMEMLIMIT is set (the runtime already uses it), when
// ratio is not in (0, 1], or when no limit is found. It returns the limit it
// set (0: none) and where it found the container's.
func SetMemoryLimit(ratio float64, getenv func(string) string, readFile func(string) ([]byte, error)) (int64, string) {
	if getenv("GOMEMLIMIT") != "" || ratio <= 0 || ratio > 1 {
		return 0, ""
	}
	for _, f := range cgroupMemoryFiles {
		limit, ok := parseCgroupLimit(readFile(f))
		if ok {
			l := int64(float64(limit) * ratio)
			debug.SetMemoryLimit(l)
			return l, f
		}
	}
	return 0, ""
}

// parseCgroupLimit reads a cgroup memory limit; "max" and the v1 "no limit"
// value (close to the largest int64) are no limit.
func parseCgroupLimit(b []byte, err error) (int64, bool) {
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 || v >= 1<<60 {
		return 0, false
	}
	return v, true
}

// SetGCPercent sets the garbage collector's target percentage unless GOGC is
// set (the runtime already uses it) or percent is not positive. It reports
// whether it set it.
func SetGCPercent(percent int, getenv func(string) string) bool {
	if getenv("GOGC") != "" || percent <= 0 {
		return false
	}
	debug.SetGCPercent(percent)
	return true
}
