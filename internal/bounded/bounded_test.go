package bounded

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		max  int
		want string
	}{
		{name: "short kept", in: "abc", max: 10, want: "abc"},
		{name: "exact kept", in: "abcde", max: 5, want: "abcde"},
		{name: "cut with mark", in: "abcdefghij", max: 6, want: "abc…"},
		{name: "never splits a rune", in: "ééééé", max: 6, want: "é…"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Text(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("Text(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if len(got) > tt.max || !utf8.ValidString(got) {
				t.Errorf("Text(%q, %d) = %q: %d bytes, valid UTF-8 %v", tt.in, tt.max, got, len(got), utf8.ValidString(got))
			}
		})
	}
}

func TestList(t *testing.T) {
	if got := List([]string{"a", "b", "a"}, "; "); got != "a; b" {
		t.Errorf("duplicates: got %q", got)
	}
	many := make([]string, 1000)
	for i := range many {
		many[i] = strings.Repeat("x", 3000) + string(rune('A'+i%26))
	}
	got := List(many, "; ")
	if !strings.HasSuffix(got, "; and 21 more (26 in all)") {
		t.Errorf("count: got suffix %q", got[len(got)-40:])
	}
	if len(got) > ListedItems*(Item+2)+40 {
		t.Errorf("List of 1,000 long items is %d bytes", len(got))
	}
}
