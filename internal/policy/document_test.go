package policy

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

func TestParse(t *testing.T) {
	plain := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/a+b c"}]}`
	want := Document{Version: "2012-10-17", Statement: []Statement{{
		Effect: "Allow", Action: StringList{"s3:GetObject"}, Resource: StringList{"arn:aws:s3:::b/a+b c"},
	}}}
	tests := []struct {
		name    string
		raw     string
		want    Document
		wantErr string
	}{
		{name: "plain JSON", raw: plain, want: want},
		{name: "URL-encoded as IAM returns it", raw: url.PathEscape(plain), want: want},
		{name: "query-style encoding keeps + literal", raw: strings.ReplaceAll(url.QueryEscape(plain), "+", "%20"), want: want},
		{name: "bad escape is an error", raw: "%7B%ZZ", wantErr: "decoding policy document"},
		{name: "bad JSON is an error", raw: "%7B%22Statement%22%3A", wantErr: "parsing policy document"},
		{name: "unknown field is an error", raw: `{"Statement":[],"Bogus":1}`, wantErr: "unknown field"},
		{name: "principal star", raw: `{"Statement":[{"Effect":"Allow","Principal":"*","Action":["sts:AssumeRole"]}]}`,
			want: Document{Statement: []Statement{{Effect: "Allow", Principal: Principal{"*": {"*"}}, Action: StringList{"sts:AssumeRole"}}}}},
		{name: "condition scalars", raw: `{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false},"NumericLessThan":{"s3:max-keys":10}}}]}`,
			want: Document{Statement: []Statement{{Effect: "Deny", Action: StringList{"*"}, Resource: StringList{"*"},
				Condition: Condition{"Bool": {"aws:SecureTransport": {"false"}}, "NumericLessThan": {"s3:max-keys": {"10"}}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	base := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"Read","Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Query"],"Resource":"arn:aws:dynamodb:us-east-1:123456789012:table/t"},
	  {"Effect":"Deny","Action":"s3:*","Resource":["*"],"Condition":{"StringLike":{"s3:prefix":["a/*","b/*"]}}}]}`
	tests := []struct {
		name  string
		other string
		equal bool
	}{
		{name: "identical", other: base, equal: true},
		{name: "statement order, list order, string vs list, action case, URL-encoding", equal: true, other: url.PathEscape(`{"Version":"2012-10-17","Statement":[
		  {"Effect":"Deny","Action":["S3:*"],"Resource":"*","Condition":{"StringLike":{"S3:prefix":["b/*","a/*"]}}},
		  {"Sid":"Read","Effect":"Allow","Action":["dynamodb:query","dynamodb:GetItem","dynamodb:Query"],"Resource":["arn:aws:dynamodb:us-east-1:123456789012:table/t"]}]}`)},
		{name: "extra action", equal: false, other: `{"Version":"2012-10-17","Statement":[
		  {"Sid":"Read","Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Query","dynamodb:Scan"],"Resource":"arn:aws:dynamodb:us-east-1:123456789012:table/t"},
		  {"Effect":"Deny","Action":"s3:*","Resource":["*"],"Condition":{"StringLike":{"s3:prefix":["a/*","b/*"]}}}]}`},
		{name: "resource case matters", equal: false, other: `{"Version":"2012-10-17","Statement":[
		  {"Sid":"Read","Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Query"],"Resource":"arn:aws:dynamodb:us-east-1:123456789012:table/T"},
		  {"Effect":"Deny","Action":"s3:*","Resource":["*"],"Condition":{"StringLike":{"s3:prefix":["a/*","b/*"]}}}]}`},
		{name: "operator changed", equal: false, other: `{"Version":"2012-10-17","Statement":[
		  {"Sid":"Read","Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Query"],"Resource":"arn:aws:dynamodb:us-east-1:123456789012:table/t"},
		  {"Effect":"Deny","Action":"s3:*","Resource":["*"],"Condition":{"StringEquals":{"s3:prefix":["a/*","b/*"]}}}]}`},
		{name: "version missing means 2008-10-17", equal: false, other: `{"Statement":[
		  {"Sid":"Read","Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Query"],"Resource":"arn:aws:dynamodb:us-east-1:123456789012:table/t"},
		  {"Effect":"Deny","Action":"s3:*","Resource":["*"],"Condition":{"StringLike":{"s3:prefix":["a/*","b/*"]}}}]}`},
	}
	want, err := Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EqualRaw(tt.other, want)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.equal {
				t.Errorf("EqualRaw() = %v, want %v", got, tt.equal)
			}
		})
	}
}

func TestTrustPolicy(t *testing.T) {
	d := TrustPolicy(TrustInput{
		ProviderARN:    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC",
		Issuer:         "oidc.eks.us-east-1.amazonaws.com/id/ABC",
		Namespace:      "shop",
		ServiceAccount: "cart",
	})
	got, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":["arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"]},"Action":["sts:AssumeRoleWithWebIdentity"],"Condition":{"StringEquals":{"oidc.eks.us-east-1.amazonaws.com/id/ABC:aud":["sts.amazonaws.com"],"oidc.eks.us-east-1.amazonaws.com/id/ABC:sub":["system:serviceaccount:shop:cart"]}}}]}`
	if got != want {
		t.Errorf("TrustPolicy JSON\n got: %s\nwant: %s", got, want)
	}
	if strings.Contains(got, "StringLike") || strings.Contains(got, "*") {
		t.Errorf("trust policy must not use StringLike or wildcards: %s", got)
	}

	custom := TrustPolicy(TrustInput{ProviderARN: "p", Issuer: "i", Namespace: "n", ServiceAccount: "s", Audience: "my-aud"})
	if v := custom.Statement[0].Condition["StringEquals"]["i:aud"]; len(v) != 1 || v[0] != "my-aud" {
		t.Errorf("custom audience not used: %v", v)
	}
}

func TestPermissionPolicy(t *testing.T) {
	tests := []struct {
		name  string
		stmts []v1alpha1.PermissionStatement
		want  string
		ok    bool
	}{
		{name: "none", ok: false},
		{name: "default effect and conditions", ok: true,
			stmts: []v1alpha1.PermissionStatement{
				{Actions: []string{"dynamodb:GetItem"}, Resources: []string{"arn:aws:dynamodb:*:*:table/orders"}},
				{Sid: "Put", Effect: v1alpha1.EffectDeny, Actions: []string{"s3:PutObject"}, Resources: []string{"*"},
					Conditions: map[string]map[string][]string{"StringNotLike": {"s3:prefix": {"home/*"}}}},
			},
			want: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:GetItem"],"Resource":["arn:aws:dynamodb:*:*:table/orders"]},{"Sid":"Put","Effect":"Deny","Action":["s3:PutObject"],"Resource":["*"],"Condition":{"StringNotLike":{"s3:prefix":["home/*"]}}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := PermissionPolicy(tt.stmts)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			got, err := d.JSON()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestProviderID(t *testing.T) {
	tests := map[string]string{
		"https://oidc.eks.us-east-1.amazonaws.com/id/ABC": "oidc.eks.us-east-1.amazonaws.com/id/ABC",
		// A trailing slash is part of the issuer (Azure AD, envtest): the
		// provider and the condition keys keep it.
		"https://oidc.eks.us-east-1.amazonaws.com/id/ABC/":      "oidc.eks.us-east-1.amazonaws.com/id/ABC/",
		"https://sts.windows.net/00000000-1111-2222-3333-4444/": "sts.windows.net/00000000-1111-2222-3333-4444/",
		"oidc.example.com":           "oidc.example.com",
		" https://127.0.0.1:6443/ ":  "127.0.0.1:6443/",
		"HTTPS://issuer.example/x//": "issuer.example/x//",
	}
	for in, want := range tests {
		got, err := ProviderID(in)
		if err != nil || got != want {
			t.Errorf("ProviderID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "https://", "http://issuer.example", "https:///path"} {
		if got, err := ProviderID(bad); err == nil {
			t.Errorf("ProviderID(%q) = %q, want an error", bad, got)
		}
	}
}

func TestSize(t *testing.T) {
	if got := Size("{ \"a\" :\n\t[1, 2] }"); got != 11 {
		t.Errorf("Size = %d, want 11", got)
	}
}

func TestParseRejectsNonScalars(t *testing.T) {
	for _, raw := range []string{
		`{"Statement":[{"Effect":"Allow","Action":null}]}`,
		`{"Statement":[{"Effect":"Allow","Action":{"a":1}}]}`,
		`{"Statement":[{"Effect":"Allow","Action":[["x"]]}]}`,
	} {
		if _, err := Parse(raw); err == nil {
			t.Errorf("Parse(%s) succeeded, want an error", raw)
		}
	}
}

func TestConditionKeysDifferingInCaseAreDeterministic(t *testing.T) {
	a := Document{Statement: []Statement{{Effect: "Allow", Action: StringList{"s3:GetObject"}, Resource: StringList{"*"},
		Condition: Condition{"StringEquals": {"aws:PrincipalTag/x": {"1"}, "aws:principaltag/X": {"2"}}}}}}
	first, _ := json.Marshal(a.Canonical())
	for range 50 {
		again, _ := json.Marshal(a.Canonical())
		if string(again) != string(first) {
			t.Fatalf("canonical form depends on map order:\n%s\n%s", first, again)
		}
	}
	b := Document{Statement: []Statement{{Effect: "Allow", Action: StringList{"s3:GetObject"}, Resource: StringList{"*"},
		Condition: Condition{"StringEquals": {"aws:principaltag/x": {"1"}}}}}}
	if Equal(a, b) {
		t.Error("a document with two case-variant condition keys equals one with a single key")
	}
}
