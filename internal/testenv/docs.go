package testenv

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// FencedBlock is the body of the first fenced code block of a Markdown
// document in language lang whose first line is firstLine, without the
// indentation of a list item; "" when there is none. Tests run or apply
// what the docs show through it, as a reader would copy it.
func FencedBlock(doc, lang, firstLine string) string {
	re := regexp.MustCompile("(?m)^( *)```" + regexp.QuoteMeta(lang) + "\n")
	for _, m := range re.FindAllStringSubmatchIndex(doc, -1) {
		indent := doc[m[2]:m[3]]
		body, _, _ := strings.Cut(doc[m[1]:], "\n"+indent+"```")
		lines := strings.Split(body, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(l, indent)
		}
		if strings.TrimSpace(lines[0]) == firstLine {
			return strings.Join(lines, "\n") + "\n"
		}
	}
	return ""
}

// Eventually retries check every 250ms until it succeeds, and fails the
// test with what and check's last error once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// StringOrList reads an IAM policy element that is a string or a list of
// strings (Action, Resource, a principal, a condition value) as a list.
func StringOrList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}
