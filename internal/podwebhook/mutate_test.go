package podwebhook

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const roleARN = "arn:aws:iam::123456789012:role/app"

func sa(annotations map[string]string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", Annotations: annotations}}
}

func pod(annotations map[string]string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: annotations},
		Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: containers}}
}

func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func mounted(c corev1.Container) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == VolumeName && m.MountPath == MountPath && m.ReadOnly {
			return true
		}
	}
	return false
}

func tokenSource(t *testing.T, p *corev1.Pod) *corev1.ServiceAccountTokenProjection {
	t.Helper()
	for _, v := range p.Spec.Volumes {
		if v.Name == VolumeName {
			return v.Projected.Sources[0].ServiceAccountToken
		}
	}
	t.Fatal("no token volume")
	return nil
}

func TestMutateDefaults(t *testing.T) {
	p := pod(nil, corev1.Container{Name: "app"})
	p.Spec.InitContainers = []corev1.Container{{Name: "init"}}
	if r := Mutate(p, sa(map[string]string{AnnotationRoleARN: roleARN}), Config{}); !r.Mutated {
		t.Fatalf("not mutated: %s", r.Reason)
	}
	for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
		want := map[string]string{EnvRoleARN: roleARN, EnvTokenFile: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}
		if got := env(c); len(got) != 2 || got[EnvRoleARN] != want[EnvRoleARN] || got[EnvTokenFile] != want[EnvTokenFile] {
			t.Errorf("%s env = %v", c.Name, got)
		}
		if !mounted(c) {
			t.Errorf("%s has no read-only token mount", c.Name)
		}
	}
	src := tokenSource(t, p)
	if src.Audience != "sts.amazonaws.com" || *src.ExpirationSeconds != 86400 || src.Path != "token" {
		t.Errorf("token = %+v", src)
	}
	if len(p.Spec.Volumes) != 1 {
		t.Errorf("volumes = %v", p.Spec.Volumes)
	}
	if !Current(p, roleARN) || Current(p, roleARN+"-old") {
		t.Error("Current disagrees with the injection")
	}
}

func TestMutateAnnotations(t *testing.T) {
	account := sa(map[string]string{AnnotationRoleARN: roleARN, AnnotationAudience: "vault",
		AnnotationSTSRegionalEndpoints: "true", AnnotationTokenExpiration: "3600"})
	p := pod(map[string]string{AnnotationSkipContainers: "sidecar, proxy"},
		corev1.Container{Name: "app"}, corev1.Container{Name: "sidecar"}, corev1.Container{Name: "proxy"})
	Mutate(p, account, Config{Region: "eu-west-1"})
	got := env(p.Spec.Containers[0])
	if got[EnvSTSRegionalEndpoint] != "regional" || got[EnvRegion] != "eu-west-1" || got[EnvDefaultRegion] != "eu-west-1" {
		t.Errorf("env = %v", got)
	}
	for _, c := range p.Spec.Containers[1:] {
		if len(c.Env) != 0 || len(c.VolumeMounts) != 0 {
			t.Errorf("skipped container %s was changed", c.Name)
		}
	}
	src := tokenSource(t, p)
	if src.Audience != "vault" || *src.ExpirationSeconds != 3600 {
		t.Errorf("token = %+v", src)
	}

	// The pod's token-expiration wins over the ServiceAccount's, clamped.
	for value, want := range map[string]int64{"100": 600, "7200": 7200, "999999": 86400, "soon": 3600} {
		p := pod(map[string]string{AnnotationTokenExpiration: value}, corev1.Container{Name: "app"})
		Mutate(p, account, Config{})
		if got := *tokenSource(t, p).ExpirationSeconds; got != want {
			t.Errorf("pod expiration %q: got %d, want %d", value, got, want)
		}
	}
	legacy := sa(map[string]string{AnnotationRoleARN: roleARN, AnnotationSTSRegionalEndpoints: "false"})
	p = pod(nil, corev1.Container{Name: "app"})
	Mutate(p, legacy, Config{})
	if env(p.Spec.Containers[0])[EnvSTSRegionalEndpoint] != "legacy" {
		t.Errorf("env = %v", env(p.Spec.Containers[0]))
	}
}

func TestMutateLeavesAlone(t *testing.T) {
	withRole := sa(map[string]string{AnnotationRoleARN: roleARN})
	cases := map[string]struct {
		p  *corev1.Pod
		sa *corev1.ServiceAccount
	}{
		"no role annotation": {pod(nil, corev1.Container{Name: "app"}), sa(map[string]string{"other": "x"})},
		"no ServiceAccount":  {pod(nil, corev1.Container{Name: "app"}), nil},
		"already injected (here or by AWS's webhook)": {func() *corev1.Pod {
			p := pod(nil, corev1.Container{Name: "app"})
			p.Spec.Volumes = []corev1.Volume{{Name: VolumeName}}
			return p
		}(), withRole},
		"every container sets its own credentials": {pod(nil, corev1.Container{Name: "app", Env: []corev1.EnvVar{{Name: EnvRoleARN, Value: "mine"}}}), withRole},
		"every container skipped":                  {pod(map[string]string{AnnotationSkipContainers: "app"}, corev1.Container{Name: "app"}), withRole},
	}
	for name, tc := range cases {
		before := tc.p.DeepCopy()
		if r := Mutate(tc.p, tc.sa, Config{Region: "us-east-1"}); r.Mutated || r.Reason == "" {
			t.Errorf("%s: %+v", name, r)
		}
		if len(tc.p.Spec.Volumes) != len(before.Spec.Volumes) || len(tc.p.Spec.Containers[0].Env) != len(before.Spec.Containers[0].Env) {
			t.Errorf("%s: the pod was changed", name)
		}
	}
}

func TestMutateKeepsUserValuesAndIsIdempotent(t *testing.T) {
	p := pod(nil,
		corev1.Container{Name: "app", Env: []corev1.EnvVar{{Name: EnvRegion, Value: "ap-south-1"}}},
		corev1.Container{Name: "own", Env: []corev1.EnvVar{{Name: EnvTokenFile, Value: "/mine"}}})
	account := sa(map[string]string{AnnotationRoleARN: roleARN})
	Mutate(p, account, Config{Region: "us-east-1"})
	if got := env(p.Spec.Containers[0]); got[EnvRegion] != "ap-south-1" || got[EnvDefaultRegion] != "us-east-1" {
		t.Errorf("env = %v", got)
	}
	if got := env(p.Spec.Containers[1]); len(got) != 1 || mounted(p.Spec.Containers[1]) {
		t.Errorf("a container with its own token file was changed: %v", got)
	}
	once := p.DeepCopy()
	if r := Mutate(p, account, Config{Region: "us-east-1"}); r.Mutated {
		t.Fatal("mutated twice")
	}
	if len(p.Spec.Containers[0].Env) != len(once.Spec.Containers[0].Env) || len(p.Spec.Volumes) != 1 {
		t.Error("second admission changed the pod")
	}
}
