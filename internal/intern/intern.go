// Package intern keeps one copy of the values that repeat across the
// objects the operator holds in memory (cached bindings and ServiceAccounts,
// observed roles): namespaces, tag keys, actions, condition reasons, label
// sets. Decoding gives every object its own copy of each; at 10,000 bindings
// the copies add up to megabytes.
//
// Only values that repeat should be interned: tables are bounded, and past
// their bound values are returned as they are, so unique values (names,
// UIDs) would only use up room the repeated ones need.
package intern

import "sync"

const (
	// MaxEntries bounds the string table.
	MaxEntries = 1 << 14
	// MaxLen is the longest string String interns.
	MaxLen = 128
)

// Table holds one shared value per key, up to a number of keys.
type Table[V any] struct {
	mu  sync.RWMutex
	m   map[string]V
	max int
}

// NewTable returns a table of at most max keys.
func NewTable[V any](max int) *Table[V] {
	return &Table[V]{m: map[string]V{}, max: max}
}

// Shared returns the value held for key, making v that value if there is
// none yet and the table has room; v otherwise.
func (t *Table[V]) Shared(key string, v V) V {
	t.mu.RLock()
	held, ok := t.m[key]
	t.mu.RUnlock()
	if ok {
		return held
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if held, ok := t.m[key]; ok {
		return held
	}
	if len(t.m) < t.max {
		t.m[key] = v
	}
	return v
}

// Len is the number of keys held.
func (t *Table[V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

var stringTable = NewTable[string](MaxEntries)

// String returns the shared copy of s, making s that copy if there is none
// yet and the table has room.
func String(s string) string {
	if s == "" || len(s) > MaxLen {
		return s
	}
	return stringTable.Shared(s, s)
}
