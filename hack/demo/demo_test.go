package main

import (
	"bytes"
	"context"
	"regexp"
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
	if err := run(ctx, &out, false, false, false); err != nil {
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

// TestDemoPodIdentity runs `make demo DEMO_ARGS=-identity=eks-pod-identity`:
// the same binding with EKS Pod Identity, through the association to
// credentials whose caller identity is the role.
func TestDemoPodIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server and moto")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, false, false, true); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"Ready=True",
		`"pods.eks.amazonaws.com"`,
		"default/orders-api -> arn:aws:iam::123456789012:role/podidentity/demo_default_orders-reader (session tags disabled: false",
		"caller identity: arn:aws:sts::123456789012:assumed-role/demo_default_orders-reader/",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if !regexp.MustCompile(`"aws:RequestTag/kubernetes-service-account": \[\s*"orders-api"\s*\]`).MatchString(out.String()) {
		t.Errorf("the trust does not require the ServiceAccount's session tag:\n%s", out.String())
	}
	if strings.Contains(out.String(), "eks.amazonaws.com/role-arn") {
		t.Errorf("the Pod Identity demo's ServiceAccount carries the IRSA annotation:\n%s", out.String())
	}
}
