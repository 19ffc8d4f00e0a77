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
	if n := stringTable.Len(); n > MaxEntries {
		t.Fatalf("%d interned strings", stringTable.Len())
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

func TestTableKeepsTheFirstValueAndItsBound(t *testing.T) {
	tab := NewTable[[]int](2)
	first := []int{1}
	if got := tab.Shared("a", first); &got[0] != &first[0] {
		t.Fatal("the first value is not the one held")
	}
	if got := tab.Shared("a", []int{1}); &got[0] != &first[0] {
		t.Fatal("a later equal value replaced the held one")
	}
	tab.Shared("b", []int{2})
	late := []int{3}
	if got := tab.Shared("c", late); &got[0] != &late[0] || tab.Len() != 2 {
		t.Fatalf("past the bound: %d keys", tab.Len())
	}
}
