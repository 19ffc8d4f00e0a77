package intern

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

func TestStringSharesEqualStrings(t *testing.T) {
	a, b := fmt.Sprintf("team-%d", 1), fmt.Sprintf("team-%d", 1)
	if unsafe.StringData(a) == unsafe.StringData(b) {
		t.Fatal("the test needs two copies")
	}
	if x, y := String(a), String(b); x != a || unsafe.StringData(x) != unsafe.StringData(y) {
		t.Fatal("equal strings are not shared")
	}
}

func TestTableIsBounded(t *testing.T) {
	for i := range MaxEntries + 10 {
		String(fmt.Sprintf("bounded-%d", i))
	}
	table.RLock()
	n := len(table.m)
	table.RUnlock()
	if n > MaxEntries {
		t.Fatalf("%d interned strings", n)
	}
	late := fmt.Sprintf("late-%d", 1)
	if s := String(late); s != late || unsafe.StringData(s) != unsafe.StringData(late) {
		t.Fatal("a full table must return strings as they are")
	}
	long := strings.Repeat("x", MaxLen+1)
	if s := String(long); unsafe.StringData(s) != unsafe.StringData(long) {
		t.Fatal("a long string was interned")
	}
}
