package e2e_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// TestDocumentedPathsExist: every path of the repository the user-facing
// docs name (in backquotes or as a link) exists in the checkout, so a
// moved or renamed file cannot leave a command or a pointer behind.
// docs/decisions.md is a log and keeps the names of its time.
func TestDocumentedPathsExist(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(root, "README.md"), filepath.Join(root, "config", "iam", "README.md"),
		filepath.Join(root, "config", "components", "grafana-dashboard", "README.md"),
		filepath.Join(root, "charts", "podidentity-operator", "files", "README.md"))
	token := regexp.MustCompile("`([^` ]+)`|\\]\\(([^) ]+)\\)")
	inRepo := regexp.MustCompile(`^(?:\./)?(?:api|bundle|charts|cmd|config|controllers|docs|e2e|hack|internal)/`)
	brace := regexp.MustCompile(`\{([^{}]*)\}`)
	checked := 0
	for _, doc := range docs {
		if filepath.Base(doc) == "decisions.md" {
			continue
		}
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, doc)
		for _, m := range token.FindAllStringSubmatch(string(raw), -1) {
			p := m[1] + m[2]
			if m[2] != "" && !strings.HasPrefix(p, "http") {
				// A link is relative to its document.
				p, _ = filepath.Rel(root, filepath.Join(filepath.Dir(doc), p))
			}
			p = strings.TrimPrefix(p, "./")
			if !inRepo.MatchString(p) {
				continue
			}
			// config/default?ref=..., file.md#anchor, file.go:12
			p = regexp.MustCompile(`[?#:].*$`).ReplaceAllString(p, "")
			for _, expanded := range expandBraces(p, brace) {
				checked++
				if _, err := os.Stat(filepath.Join(root, expanded)); err != nil {
					t.Errorf("%s names %s, which the checkout does not have", rel, expanded)
				}
			}
		}
	}
	t.Logf("%d documented paths exist", checked)
	if checked < 20 {
		t.Fatalf("only %d paths found in the docs: the pattern no longer matches them", checked)
	}
}

// expandBraces expands a{b,c}d as the shell does.
func expandBraces(p string, brace *regexp.Regexp) []string {
	loc := brace.FindStringSubmatchIndex(p)
	if loc == nil {
		return []string{p}
	}
	var out []string
	for _, alt := range strings.Split(p[loc[2]:loc[3]], ",") {
		out = append(out, expandBraces(p[:loc[0]]+alt+p[loc[1]:], brace)...)
	}
	return out
}
