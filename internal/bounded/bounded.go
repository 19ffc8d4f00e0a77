// Package bounded cuts tenant-controlled text to a ceiling: condition
// messages, event notes and lists of findings grow with what a tenant writes
// in a spec, and the API server refuses a status whose condition message is
// over 32,768 characters (the whole status patch fails, and with it every
// other field the reconcile recorded). Everything the operator writes about
// a binding goes through here.
package bounded

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on what the operator writes about a binding.
const (
	// ConditionMessage is the most a condition message carries (the CRD
	// allows 32,768; a message is for a person, and a status holds several).
	ConditionMessage = 4096
	// EventNote is the events.k8s.io/v1 limit on a note.
	EventNote = 1024
	// ListedItems is how many items a list in a message names.
	ListedItems = 5
	// Item is the most one listed item carries.
	Item = 512
)

// Text returns s cut to at most max bytes on a rune boundary; a cut text
// ends in an ellipsis, which counts against max.
func Text(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "…"
	end := max - len(mark)
	if end < 0 {
		end = 0
	}
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + mark
}

// List joins items with sep: duplicates once, at most ListedItems of them,
// each cut to Item bytes, and then how many more there are.
func List(items []string, sep string) string {
	seen := make(map[string]bool, len(items))
	var shown []string
	distinct := 0
	for _, it := range items {
		if seen[it] {
			continue
		}
		seen[it] = true
		distinct++
		if len(shown) < ListedItems {
			shown = append(shown, Text(it, Item))
		}
	}
	out := strings.Join(shown, sep)
	if more := distinct - len(shown); more > 0 {
		out += fmt.Sprintf("%sand %d more (%d in all)", sep, more, distinct)
	}
	return out
}
