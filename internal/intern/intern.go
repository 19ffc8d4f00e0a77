// Package intern keeps one copy of the short strings that repeat across the
// objects the operator holds in memory (cached bindings and ServiceAccounts,
// observed roles): namespaces, tag keys, actions, condition reasons. Decoding
// gives every object its own copy of each; at 10,000 bindings the copies add
// up to megabytes.
//
// Only strings that repeat should be interned: the table is bounded
// (MaxEntries strings of at most MaxLen bytes), and past its bound strings
// are returned as they are, so unique values (names, UIDs) would only use up
// room the repeated ones need.
package intern

import "sync"

const (
	MaxEntries = 1 << 14
	MaxLen     = 128
)

var table = struct {
	sync.RWMutex
	m map[string]string
}{m: map[string]string{}}

// String returns the shared copy of s, adding s as that copy if there is
// none yet and the table has room.
func String(s string) string {
	if s == "" || len(s) > MaxLen {
		return s
	}
	table.RLock()
	v, ok := table.m[s]
	table.RUnlock()
	if ok {
		return v
	}
	table.Lock()
	defer table.Unlock()
	if v, ok := table.m[s]; ok {
		return v
	}
	if len(table.m) >= MaxEntries {
		return s
	}
	table.m[s] = s
	return s
}
