package identity_test

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/podwebhook"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

func render(t *testing.T, d policy.Document) string {
	t.Helper()
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// Each mechanism's trust lets exactly one ServiceAccount of one cluster in,
// evaluated as STS evaluates it, and its parked trust lets nobody in.
func TestTrustIsExact(t *testing.T) {
	const account = "111122223333"
	clusterARN := "arn:aws:eks:eu-west-1:" + account + ":cluster/prod"
	pi := identity.PodIdentity{Account: account, ClusterARN: clusterARN}
	app := identity.Subject{Namespace: "team", ServiceAccount: "app"}
	both := []string{"sts:AssumeRole", "sts:TagSession"}
	session := func(acct, cluster, ns, sa string) map[string]string {
		return map[string]string{"aws:SourceAccount": acct, "aws:RequestTag/eks-cluster-arn": cluster, "aws:RequestTag/eks-cluster-name": "prod",
			"aws:RequestTag/kubernetes-namespace": ns, "aws:RequestTag/kubernetes-service-account": sa,
			"aws:RequestTag/kubernetes-pod-name": "app-1", "aws:RequestTag/kubernetes-pod-uid": "uid"}
	}
	svc := func(ctx map[string]string, actions ...string) testenv.TrustRequest {
		return testenv.TrustRequest{PrincipalType: "Service", Principal: identity.PodIdentityService, Actions: actions, Context: ctx}
	}
	provider := policy.Provider{ARN: "arn:aws:iam::" + account + ":oidc-provider/oidc.example/id/1", ID: "oidc.example/id/1"}
	irsa := identity.IRSA{Provider: provider}
	web := func(sub, aud string) testenv.TrustRequest {
		return testenv.TrustRequest{PrincipalType: "Federated", Principal: provider.ARN, Actions: []string{policy.AssumeRoleWithWebIdentity},
			Context: map[string]string{provider.ID + ":sub": sub, provider.ID + ":aud": aud}}
	}
	for _, c := range []struct {
		name string
		doc  policy.Document
		req  testenv.TrustRequest
		want bool
	}{
		{"Pod Identity: the association's ServiceAccount", pi.Trust(app), svc(session(account, clusterARN, "team", "app"), both...), true},
		{"Pod Identity: another ServiceAccount", pi.Trust(app), svc(session(account, clusterARN, "team", "other"), both...), false},
		{"Pod Identity: another namespace", pi.Trust(app), svc(session(account, clusterARN, "other", "app"), both...), false},
		{"Pod Identity: a cluster of the same name in another region", pi.Trust(app),
			svc(session(account, "arn:aws:eks:us-east-1:"+account+":cluster/prod", "team", "app"), both...), false},
		{"Pod Identity: another account's cluster (confused deputy)", pi.Trust(app),
			svc(session("444455556666", "arn:aws:eks:eu-west-1:444455556666:cluster/prod", "team", "app"), both...), false},
		{"Pod Identity: session tags disabled on the association", pi.Trust(app),
			svc(map[string]string{"aws:SourceAccount": account}, "sts:AssumeRole"), false},
		{"Pod Identity: parked", pi.Parked(), svc(session(account, clusterARN, "team", "app"), both...), false},
		{"Pod Identity: IRSA's principal", pi.Trust(app), web("system:serviceaccount:team:app", "sts.amazonaws.com"), false},
		{"IRSA: the ServiceAccount", irsa.Trust(app), web("system:serviceaccount:team:app", "sts.amazonaws.com"), true},
		{"IRSA: another ServiceAccount", irsa.Trust(app), web("system:serviceaccount:team:other", "sts.amazonaws.com"), false},
		{"IRSA: another audience", irsa.Trust(app), web("system:serviceaccount:team:app", "vault"), false},
		{"IRSA: parked", irsa.Parked(), web("system:serviceaccount:team:app", "sts.amazonaws.com"), false},
		{"IRSA: EKS's service principal", irsa.Trust(app), svc(session(account, clusterARN, "team", "app"), both...), false},
	} {
		got, err := testenv.TrustAllows(render(t, c.doc), c.req)
		if err != nil || got != c.want {
			t.Errorf("%s: allowed=%v (%v), want %v", c.name, got, err, c.want)
		}
	}
}

func TestPodCurrent(t *testing.T) {
	const arn = "arn:aws:iam::111122223333:role/app"
	piPod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: identity.VolumeToken}},
		Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{{Name: identity.EnvCredentialsURI, Value: "http://169.254.170.23/v1/credentials"}}}}}}
	irsaPod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "aws-iam-token"}},
		Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{{Name: "AWS_ROLE_ARN", Value: arn}}}}}}
	bare := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	for _, c := range []struct {
		name string
		m    identity.Mechanism
		pod  *corev1.Pod
		want bool
	}{
		{"Pod Identity, injected", identity.PodIdentity{}, piPod, true},
		{"Pod Identity, an IRSA pod", identity.PodIdentity{}, irsaPod, false},
		{"Pod Identity, started before the association", identity.PodIdentity{}, bare, false},
		{"IRSA, injected with the role", identity.IRSA{}, irsaPod, true},
		{"IRSA, a Pod Identity pod", identity.IRSA{}, piPod, false},
	} {
		if got := c.m.PodCurrent(c.pod, arn); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		// The pods controller reads pods from a cache that trims them
		// (podwebhook.TrimPod): every mechanism must judge them the same.
		trimmed, err := podwebhook.TrimPod(c.pod)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.m.PodCurrent(trimmed.(*corev1.Pod), arn); got != c.want {
			t.Errorf("%s, as the pod cache holds it: %v, want %v", c.name, got, c.want)
		}
	}
}
