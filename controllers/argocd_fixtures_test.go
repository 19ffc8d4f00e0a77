package controllers_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/argocd"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// The Argo CD health checks live in Argo CD's upstream layout, with
// fixtures. This spec makes real objects in each state with the operator,
// and checks that the health check gives each one the result its fixture's
// health_test.yaml records. UPDATE_ARGOCD_FIXTURES=1 rewrites the fixtures
// from the real objects instead.

type healthTests struct {
	Tests []healthTest `json:"tests"`
}

type healthTest struct {
	HealthStatus struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"healthStatus"`
	InputPath string `json:"inputPath"`
}

var _ = Describe("Argo CD health fixtures", Ordered, func() {
	root, _ := testenv.RepoRoot()
	dir := func(kind string) string {
		return filepath.Join(root, "config", "argocd", "resource_customizations", "iam.podidentity.io", kind)
	}
	update := os.Getenv("UPDATE_ARGOCD_FIXTURES") == "1"
	var ns, bypass string
	captured := map[string]map[string]map[string]any{"PodIdentityBinding": {}, "PodIdentityGuardrail": {}}

	// sanitize keeps what a user sees of an object, with run-specific names
	// replaced, as a generic map.
	sanitize := func(o client.Object) map[string]any {
		raw, err := json.Marshal(o)
		Expect(err).NotTo(HaveOccurred())
		text := strings.NewReplacer(bypass, "team-b", ns, "team-a", strings.TrimPrefix(issuerURL, "https://"), "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE/").Replace(string(raw))
		var m map[string]any
		Expect(json.Unmarshal([]byte(text), &m)).To(Succeed())
		meta := m["metadata"].(map[string]any)
		kept := map[string]any{"name": meta["name"], "generation": meta["generation"]}
		for _, k := range []string{"namespace", "finalizers", "deletionTimestamp"} {
			if v, ok := meta[k]; ok {
				kept[k] = v
			}
		}
		m["metadata"] = kept
		if st, ok := m["status"].(map[string]any); ok {
			if conds, ok := st["conditions"].([]any); ok {
				for _, c := range conds {
					c.(map[string]any)["lastTransitionTime"] = "2026-11-27T00:00:00Z"
				}
			}
		}
		return m
	}
	capture := func(name string, o client.Object) {
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
		kind := "PodIdentityBinding"
		if _, ok := o.(*v1alpha1.PodIdentityGuardrail); ok {
			kind = "PodIdentityGuardrail"
		}
		o.GetObjectKind().SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
		captured[kind][name] = sanitize(o)
	}
	// derived: the same object one generation ahead of its status, and being
	// deleted, as a user sees them between two reconciles.
	derive := func(kind, from string) {
		lag := deepCopyMap(captured[kind][from])
		meta := lag["metadata"].(map[string]any)
		meta["generation"] = meta["generation"].(float64) + 1
		captured[kind]["generation-lagging"] = lag
		if kind == "PodIdentityBinding" {
			del := deepCopyMap(captured[kind][from])
			del["metadata"].(map[string]any)["deletionTimestamp"] = "2026-11-27T00:00:00Z"
			captured[kind]["deleting"] = del
		}
	}

	BeforeAll(func() {
		ns = newNamespace()
		bypass = newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true", "fixtures": "b"})
		Expect(k8s.Create(ctx, newBinding(ns, "healthy", "healthy"))).To(Succeed())
		waitReady(ns, "healthy")
		capture("healthy", &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "healthy"}})

		typo := newBinding(bypass, "invalid-spec", "invalid-spec")
		typo.Spec.Permissions[0].Actions = []string{"dynamodb:GetItemz"}
		Expect(k8s.Create(ctx, typo)).To(Succeed())

		foreign := ns + "_foreign"
		createForeignRole(foreign)
		conflict := newBinding(ns, "role-conflict", "role-conflict")
		conflict.Spec.RoleName = foreign
		Expect(k8s.Create(ctx, conflict)).To(Succeed())

		// No wait: created in the same second, the holder wins the tie by name.
		Expect(k8s.Create(ctx, newBinding(ns, "serviceaccount-conflict", "healthy"))).To(Succeed())

		aud := newBinding(ns, "audience-not-registered", "audience-not-registered")
		aud.Spec.ServiceAccountToken = &v1alpha1.ServiceAccountTokenSettings{Audience: "vault"}
		Expect(k8s.Create(ctx, aud)).To(Succeed())

		g := guardrail("fixtures-"+ns, map[string]string{"fixtures": "b"}, v1alpha1.PodIdentityGuardrailSpec{DeniedActions: []string{"s3:Delete*"}})
		Expect(k8s.Create(ctx, g)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, g))).To(Succeed()) })
		violating := newBinding(bypass, "guardrail-violation", "guardrail-violation")
		violating.Spec.Permissions = []v1alpha1.PermissionStatement{statement([]string{"s3:DeleteObject"}, "arn:aws:s3:::bucket/*")}
		Expect(k8s.Create(ctx, violating)).To(Succeed())
		ok := guardrail("fixtures-ok-"+ns, map[string]string{"kubernetes.io/metadata.name": ns}, v1alpha1.PodIdentityGuardrailSpec{DeniedActions: []string{"iam:*"}})
		Expect(k8s.Create(ctx, ok)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, ok))).To(Succeed()) })

		for name, reason := range map[string]string{"invalid-spec": "InvalidSpec", "guardrail-violation": "GuardrailViolation"} {
			Eventually(readyReason(bypass, name), timeout, interval).Should(Equal(reason))
			capture(name, &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: bypass, Name: name}})
		}
		for name, reason := range map[string]string{"role-conflict": "RoleConflict", "serviceaccount-conflict": "ServiceAccountConflict",
			"audience-not-registered": "AudienceNotRegistered"} {
			Eventually(readyReason(ns, name), timeout, interval).Should(Equal(reason))
			capture(name, &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
		}
		for name, g := range map[string]*v1alpha1.PodIdentityGuardrail{"degraded": g, "healthy": ok} {
			Eventually(func() int64 {
				Expect(k8s.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
				return g.Status.ObservedGeneration
			}, timeout, interval).Should(Equal(g.Generation))
			want := v1alpha1.PodIdentityGuardrailStatus{SelectedBindings: 4}
			if name == "degraded" {
				want = v1alpha1.PodIdentityGuardrailStatus{SelectedBindings: 2, ViolatingBindings: 1}
			}
			Eventually(func() [2]int32 {
				Expect(k8s.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
				return [2]int32{g.Status.SelectedBindings, g.Status.ViolatingBindings}
			}, timeout, interval).Should(Equal([2]int32{want.SelectedBindings, want.ViolatingBindings}))
			capture(name, g)
		}
		derive("PodIdentityBinding", "healthy")
		derive("PodIdentityGuardrail", "healthy")
		for _, n := range []string{"healthy", "role-conflict", "serviceaccount-conflict", "audience-not-registered"} {
			deleteBinding(ns, n)
		}
		for _, n := range []string{"invalid-spec", "guardrail-violation"} {
			deleteBinding(bypass, n)
		}
	})

	for _, kind := range []string{"PodIdentityBinding", "PodIdentityGuardrail"} {
		It("gives each real "+kind+" the result its fixture records", func() {
			script, err := os.ReadFile(filepath.Join(dir(kind), "health.lua"))
			Expect(err).NotTo(HaveOccurred())
			names := make([]string, 0, len(captured[kind]))
			for n := range captured[kind] {
				names = append(names, n)
			}
			sort.Strings(names)
			if update {
				var tests healthTests
				for _, n := range names {
					h, err := argocd.Evaluate(string(script), captured[kind][n])
					Expect(err).NotTo(HaveOccurred())
					out, err := yaml.Marshal(captured[kind][n])
					Expect(err).NotTo(HaveOccurred())
					Expect(os.WriteFile(filepath.Join(dir(kind), "testdata", n+".yaml"), out, 0o644)).To(Succeed())
					t := healthTest{InputPath: "testdata/" + n + ".yaml"}
					t.HealthStatus.Status, t.HealthStatus.Message = h.Status, h.Message
					tests.Tests = append(tests.Tests, t)
				}
				out, err := yaml.Marshal(tests)
				Expect(err).NotTo(HaveOccurred())
				Expect(os.WriteFile(filepath.Join(dir(kind), "health_test.yaml"), out, 0o644)).To(Succeed())
				return
			}
			raw, err := os.ReadFile(filepath.Join(dir(kind), "health_test.yaml"))
			Expect(err).NotTo(HaveOccurred())
			var tests healthTests
			Expect(yaml.Unmarshal(raw, &tests)).To(Succeed())
			want := map[string]healthTest{}
			for _, t := range tests.Tests {
				want[strings.TrimSuffix(filepath.Base(t.InputPath), ".yaml")] = t
			}
			Expect(want).To(HaveLen(len(names)), "one fixture per captured state (UPDATE_ARGOCD_FIXTURES=1 rewrites them)")
			for _, n := range names {
				h, err := argocd.Evaluate(string(script), captured[kind][n])
				Expect(err).NotTo(HaveOccurred())
				Expect(want).To(HaveKey(n))
				Expect(h.Status).To(Equal(want[n].HealthStatus.Status), n)
				Expect(h.Message).To(Equal(want[n].HealthStatus.Message), n)
			}
		})
	}
})

func deepCopyMap(m map[string]any) map[string]any {
	raw, err := json.Marshal(m)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var out map[string]any
	ExpectWithOffset(1, json.Unmarshal(raw, &out)).To(Succeed())
	return out
}
