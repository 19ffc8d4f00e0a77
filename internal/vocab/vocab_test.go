package vocab

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// Every event reason and change kind is in its list (read from this
// package's source, so a new constant cannot be left out), and the README,
// which users read, names each one.
func TestREADMENamesEveryEventReasonAndChangeKind(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string][]string{}
	f, err := parser.ParseFile(token.NewFileSet(), "vocab.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); ok {
				for i := range v.Names {
					lit := v.Values[i].(*ast.BasicLit).Value
					declared[id.Name] = append(declared[id.Name], strings.Trim(lit, `"`))
				}
			}
		}
	}
	listed := map[string]map[string]bool{"EventReason": {}, "ChangeKind": {}}
	for _, r := range EventReasons {
		listed["EventReason"][string(r)] = true
	}
	for _, k := range ChangeKinds {
		listed["ChangeKind"][string(k)] = true
	}
	for typ, values := range declared {
		if len(values) != len(listed[typ]) {
			t.Errorf("%d %s constants, %d in the list", len(values), typ, len(listed[typ]))
		}
		for _, v := range values {
			if !listed[typ][v] {
				t.Errorf("%s %s is not in its list", typ, v)
			}
			if !strings.Contains(string(readme), "`"+v+"`") {
				t.Errorf("the README does not name %s %s", typ, v)
			}
		}
	}
	if len(declared["EventReason"]) == 0 || len(declared["ChangeKind"]) == 0 {
		t.Fatalf("no constants found: %v", declared)
	}
}
