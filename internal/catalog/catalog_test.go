package catalog

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestDefaultLoads(t *testing.T) {
	c := Default()
	if c.Services() < 400 || c.Actions() < 15000 {
		t.Fatalf("catalog too small: %d services, %d actions", c.Services(), c.Actions())
	}
	if DataVersion() == "" {
		t.Error("no data version")
	}
}

func TestExpand(t *testing.T) {
	c := Default()
	tests := []struct {
		pattern    string
		wantMin    int
		wantErr    bool
		suggestion string
	}{
		{pattern: "dynamodb:GetItem", wantMin: 1},
		{pattern: "DynamoDB:getitem", wantMin: 1},
		{pattern: "s3:Get*", wantMin: 10},
		{pattern: "s3:*Object", wantMin: 3},
		{pattern: "s3:GetObjec?", wantMin: 1},
		{pattern: "*", wantMin: 15000},
		{pattern: "dyanmodb:GetItem", wantErr: true, suggestion: "dynamodb:GetItem"},
		{pattern: "s3:GetObjects", wantErr: true, suggestion: "s3:GetObject"},
		{pattern: "s3:getobjcet", wantErr: true, suggestion: "s3:GetObject"},
		{pattern: "s3:Fly*", wantErr: true},
		{pattern: "nosuchservicezzz:Get", wantErr: true},
		{pattern: "GetObject", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			got, err := c.Expand(tt.pattern)
			if tt.wantErr {
				var ue *UnknownError
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want *UnknownError", err)
				}
				if ue.Suggestion != tt.suggestion {
					t.Errorf("suggestion = %q, want %q (%v)", ue.Suggestion, tt.suggestion, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < tt.wantMin {
				t.Errorf("%d matches, want at least %d", len(got), tt.wantMin)
			}
		})
	}
}

func TestAccessLevels(t *testing.T) {
	c := Default()
	tests := map[string]AccessLevel{
		"s3:GetObject":      Read,
		"s3:PutObject":      Write,
		"s3:ListBucket":     List,
		"iam:CreateRole":    Write,
		"iam:PutRolePolicy": PermissionsManagement,
		"iam:TagRole":       Tagging,
	}
	for name, want := range tests {
		a, ok := c.Lookup(name)
		if !ok {
			t.Errorf("%s not found", name)
			continue
		}
		if a.Level != want {
			t.Errorf("%s: level %s, want %s", name, a.Level, want)
		}
	}
	if !PermissionsManagement.IsWrite() || Read.IsWrite() {
		t.Error("IsWrite wrong")
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"dynamodb", "dyanmodb", 1}, {"kitten", "sitting", 3}, {"", "abc", 3}, {"same", "same", 0}} {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q,%q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func BenchmarkExpand(b *testing.B) {
	c := Default()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Expand("dynamodb:Get*"); err != nil {
			b.Fatal(err)
		}
	}
}

// Every action's key is its name in lower case (the key is cut out of one
// lower-cased copy of the data at the name's offset).
func TestKeysAreLowerCaseNames(t *testing.T) {
	c := Default()
	n := 0
	for _, svc := range c.names {
		for _, a := range c.services[svc] {
			if a.Key() != strings.ToLower(a.String()) {
				t.Fatalf("key %q for %s", a.Key(), a)
			}
			n++
		}
	}
	if n != c.Actions() || n < 10000 {
		t.Errorf("%d actions checked", n)
	}
}

// MatchKey agrees with matching the whole key, for literal and wildcard
// services alike.
func TestMatchKeyAgreesWithTheKey(t *testing.T) {
	c := Default()
	patterns := []string{"s3:get*", "s3:*", "s*:get*", "*:getobject", "s3:getobject", "s3:get?bject", "s3*",
		"dynamodb:*item", "s3:[g]etobject", "iam:*", "*", "s3:get*:x", "ec2:describe*"}
	for _, svc := range []string{"s3", "dynamodb", "iam", "ec2", "sts"} {
		for _, a := range c.services[svc] {
			for _, p := range patterns {
				want, _ := path.Match(p, a.Key())
				if got := a.MatchKey(p); got != want {
					t.Fatalf("%q against %s: %v, the key says %v", p, a, got, want)
				}
			}
		}
	}
}
