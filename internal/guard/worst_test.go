package guard

import (
	"strings"
	"testing"
	"time"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// worstSpecs are the most expensive specs the CRD accepts (issue 17,
// defect 5): what a tenant controls is the number of statements (100),
// actions per statement (100) and their patterns.
func worstSpecs() map[string]*v1alpha1.PodIdentityBinding {
	stars := func(stmts, per int) *v1alpha1.PodIdentityBinding {
		b := binding()
		for range stmts {
			st := allow(nil, "*")
			for range per {
				st.Actions = append(st.Actions, "*")
			}
			b.Spec.Permissions = append(b.Spec.Permissions, st)
		}
		return b
	}
	// Distinct patterns that each match most of EC2, as many as fit in
	// IAM's inline policy limit.
	distinct := func() *v1alpha1.PodIdentityBinding {
		b := binding()
		var st v1alpha1.PermissionStatement
		n := 0
		for _, p := range []string{"*", "?*", "*?", "??*", "*??", "?*?", "???*", "*???"} {
			for _, first := range "abcdefghijklmnopqrstuvwxyz" {
				if len(st.Actions) == 100 {
					b.Spec.Permissions = append(b.Spec.Permissions, st)
					st = v1alpha1.PermissionStatement{}
				}
				if len(st.Actions) == 0 {
					st = allow(nil, "*")
				}
				st.Actions = append(st.Actions, "ec2:"+string(first)+p)
				n++
			}
		}
		b.Spec.Permissions = append(b.Spec.Permissions, st)
		return b
	}
	many := func() *v1alpha1.PodIdentityBinding {
		b := binding()
		for i := range 100 {
			st := allow(nil, "*")
			for j := range 100 {
				st.Actions = append(st.Actions, "ec2:"+strings.Repeat("*", 1+(i*100+j)%120))
			}
			b.Spec.Permissions = append(b.Spec.Permissions, st)
		}
		return b
	}
	// Within IAM's inline policy limit: distinct wildcard prefixes of real
	// EC2 actions, each matching at least one, as many as fit.
	prefixes := func() *v1alpha1.PodIdentityBinding {
		ec2, _ := checker.Catalog.Expand("ec2:*")
		seen := map[string]bool{}
		var patterns []string
		for _, a := range ec2 {
			for n := 2; n < len(a.Name) && n < 12; n++ {
				p := "ec2:" + a.Name[:n] + "*"
				if !seen[p] {
					seen[p] = true
					patterns = append(patterns, p)
				}
			}
		}
		b := binding()
		size := 0
		for len(patterns) > 0 && size < 9500 {
			st := allow(nil, "*")
			for len(patterns) > 0 && len(st.Actions) < 100 && size < 9500 {
				st.Actions = append(st.Actions, patterns[0])
				size += len(patterns[0]) + 3
				patterns = patterns[1:]
			}
			b.Spec.Permissions = append(b.Spec.Permissions, st)
		}
		return b
	}
	return map[string]*v1alpha1.PodIdentityBinding{
		"22x100 star":            stars(22, 100),
		"ec2 prefixes":           prefixes(),
		"23x100 star":            stars(23, 100),
		"100x100 star":           stars(100, 100),
		"distinct ec2 wildcards": distinct(),
		"100x100 ec2 star runs":  many(),
	}
}

var worstRules = []Rule{
	{Name: "allow", AllowedActions: []string{"s3:*", "dynamodb:*", "ec2:Describe*"}, AllowedResources: []string{"arn:aws:s3:::team-a-*"}},
	{Name: "deny", DeniedActions: []string{"s3:Delete*", "dynamodb:DeleteTable", "ec2:Terminate*", "ec2:Delete*"}},
}

// TestWorstSpecIsCheap: no spec the CRD accepts costs more than 50 ms to
// check (measured in BenchmarkCheckWorstSpec; this test only bounds it at
// ten times that, so a slow CI machine does not fail it).
func TestWorstSpecIsCheap(t *testing.T) {
	for name, b := range worstSpecs() {
		start := time.Now()
		r := checker.Check(b, worstRules, nil)
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("%s: %v", name, took)
		}
		if len(r.Invalid)+len(r.Violations) == 0 {
			t.Errorf("%s: accepted", name)
		}
		if msg := Message(append(r.Invalid, r.Violations...)); len(msg) > 4096 {
			t.Errorf("%s: message of %d bytes", name, len(msg))
		}
	}
}

func BenchmarkCheckWorstSpec(b *testing.B) {
	for name, bd := range worstSpecs() {
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				checker.Check(bd, worstRules, nil)
			}
		})
	}
}
