package testenv

import (
	"net/url"
	"testing"
)

func TestTrustAllows(t *testing.T) {
	const podIdentity = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},` +
		`"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"aws:SourceAccount":"111122223333",` +
		`"aws:RequestTag/kubernetes-namespace":"team","aws:RequestTag/kubernetes-service-account":"app"},` +
		`"StringLike":{"aws:SourceArn":"arn:aws:eks:*:111122223333:cluster/prod"}}}]}`
	ctx := func(ns, sa string) map[string]string {
		return map[string]string{"aws:SourceAccount": "111122223333", "aws:SourceArn": "arn:aws:eks:us-east-1:111122223333:cluster/prod",
			"aws:RequestTag/kubernetes-namespace": ns, "AWS:RequestTag/Kubernetes-Service-Account": sa}
	}
	both := []string{"sts:AssumeRole", "sts:TagSession"}
	for _, c := range []struct {
		name string
		doc  string
		req  TrustRequest
		want bool
	}{
		{"the ServiceAccount", podIdentity, TrustRequest{"Service", "pods.eks.amazonaws.com", both, ctx("team", "app")}, true},
		{"URL-encoded as IAM returns it", url.QueryEscape(podIdentity), TrustRequest{"Service", "pods.eks.amazonaws.com", both, ctx("team", "app")}, true},
		{"another ServiceAccount", podIdentity, TrustRequest{"Service", "pods.eks.amazonaws.com", both, ctx("team", "other")}, false},
		{"another namespace", podIdentity, TrustRequest{"Service", "pods.eks.amazonaws.com", both, ctx("other", "app")}, false},
		{"no session tags", podIdentity, TrustRequest{"Service", "pods.eks.amazonaws.com", []string{"sts:AssumeRole"},
			map[string]string{"aws:SourceAccount": "111122223333"}}, false},
		{"another principal", podIdentity, TrustRequest{"Service", "ec2.amazonaws.com", both, ctx("team", "app")}, false},
		{"an action not allowed", `{"Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}`,
			TrustRequest{"Service", "pods.eks.amazonaws.com", both, nil}, false},
		{"Deny wins", `{"Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:*"},` +
			`{"Effect":"Deny","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:TagSession"}]}`,
			TrustRequest{"Service", "pods.eks.amazonaws.com", both, nil}, false},
		{"an unknown operator never matches", `{"Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":"sts:AssumeRole",` +
			`"Condition":{"StringEqualsIfExists":{"aws:SourceAccount":"111122223333"}}}]}`,
			TrustRequest{"Service", "pods.eks.amazonaws.com", []string{"sts:AssumeRole"}, map[string]string{"aws:SourceAccount": "111122223333"}}, false},
	} {
		got, err := TrustAllows(c.doc, c.req)
		if err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
}
