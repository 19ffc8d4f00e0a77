package operator

import (
	"errors"
	"math"
	"runtime/debug"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(f string) ([]byte, error) {
			if v, ok := m[f]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		}
	}
	noEnv := func(string) string { return "" }
	for _, tt := range []struct {
		name   string
		env    func(string) string
		files  map[string]string
		ratio  float64
		want   int64
		source string
	}{
		{"cgroup v2", noEnv, map[string]string{"/sys/fs/cgroup/memory.max": "268435456\n"}, 0.9, 241591910, "/sys/fs/cgroup/memory.max"},
		{"cgroup v1", noEnv, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456\n"}, 0.9, 241591910, "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{"no limit (v2)", noEnv, map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 0.9, 0, ""},
		{"no limit (v1)", noEnv, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0.9, 0, ""},
		{"GOMEMLIMIT wins", func(string) string { return "100MiB" }, map[string]string{"/sys/fs/cgroup/memory.max": "268435456"}, 0.9, 0, ""},
		{"disabled", noEnv, map[string]string{"/sys/fs/cgroup/memory.max": "268435456"}, 0, 0, ""},
		{"outside a container", noEnv, nil, 0.9, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			got, source := SetMemoryLimit(tt.ratio, tt.env, files(tt.files))
			if got != tt.want || source != tt.source {
				t.Errorf("got %d from %q, want %d from %q", got, source, tt.want, tt.source)
			}
			if applied := debug.SetMemoryLimit(-1); (tt.want == 0) != (applied == math.MaxInt64) || tt.want != 0 && applied != tt.want {
				t.Errorf("runtime limit %d", applied)
			}
		})
	}
}

func TestSetGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	noEnv := func(string) string { return "" }
	if !SetGCPercent(40, noEnv) || debug.SetGCPercent(100) != 40 {
		t.Error("--gc-percent was not applied")
	}
	if SetGCPercent(40, func(k string) string { return map[string]string{"GOGC": "200"}[k] }) || debug.SetGCPercent(100) != 100 {
		t.Error("GOGC did not win over --gc-percent")
	}
	if SetGCPercent(0, noEnv) || debug.SetGCPercent(100) != 100 {
		t.Error("a non-positive --gc-percent was applied")
	}
}
