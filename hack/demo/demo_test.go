package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `make demo` end to end, so the README's first command keeps working.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server and moto")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, false, false); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"Ready=True",
		`"sts:AssumeRoleWithWebIdentity"`,
		`"system:serviceaccount:default:orders-api"`,
		`"dynamodb:GetItem"`,
		"eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/podidentity/demo_default_orders-reader",
		"sub=system:serviceaccount:default:orders-api aud=[sts.amazonaws.com]",
		"temporary credentials: AccessKeyId=",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
