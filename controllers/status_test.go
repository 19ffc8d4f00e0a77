package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/managedfields"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// Issue 19, "one writer per status field": the binding reconciler used to
// merge-patch the whole conditions list from its copy of the binding, which
// could revert the PodsCurrent condition the pods controller had written in
// the meantime. Each now applies only its own fields under its own field
// manager, which the API server records and enforces.
var _ = Describe("Binding status", func() {
	It("has one writer per field: the binding reconciler and the pods controller each apply their own part", func() {
		ns := newNamespace()
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}})).To(Succeed())
		deployment(ns, "api", "app", 1) // its pod starts before the role: stale
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		waitReady(ns, "app")
		Eventually(podCounts(ns, "app"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 0, Stale: 1}))

		By("the binding reconciler writes its status again (a spec change): PodsCurrent stays as the pods controller wrote it")
		b := getBinding(ns, "app")
		b.Spec.Permissions[0].Actions = append(b.Spec.Permissions[0].Actions, "dynamodb:Query")
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(func() int64 { return getBinding(ns, "app").Status.ObservedGeneration }, timeout, interval).Should(Equal(b.Generation))
		Consistently(func() string {
			c := meta.FindStatusCondition(getBinding(ns, "app").Status.Conditions, v1alpha1.ConditionPodsCurrent)
			if c == nil {
				return "<none>"
			}
			return c.Reason
		}, 2*syncPeriod, interval).Should(Equal(v1alpha1.ReasonStalePods))

		By("managedFields: each status field has exactly the writer it should")
		b = getBinding(ns, "app")
		owners := map[string]metav1.ManagedFieldsEntry{}
		for _, e := range b.ManagedFields {
			if e.Subresource == "status" {
				Expect(e.Operation).To(Equal(metav1.ManagedFieldsOperationApply), "%s writes status without server-side apply", e.Manager)
				owners[e.Manager] = e
			}
		}
		Expect(owners).To(HaveLen(2), "status writers: %v", owners)
		condition := func(t string) []any { return []any{"status", "conditions", map[string]string{"type": t}} }
		for _, part := range []struct {
			manager   string
			owns, not [][]any
		}{
			{vocab.StatusManagerBinding,
				[][]any{condition(v1alpha1.ConditionReady), condition(v1alpha1.ConditionRoleSynced), {"status", "roleArn"}, {"status", "observedGeneration"}},
				[][]any{condition(v1alpha1.ConditionPodsCurrent), {"status", "pods"}}},
			{vocab.StatusManagerPods,
				[][]any{condition(v1alpha1.ConditionPodsCurrent), {"status", "pods"}},
				[][]any{condition(v1alpha1.ConditionReady), condition(v1alpha1.ConditionRoleSynced), {"status", "roleArn"}}},
		} {
			e, ok := owners[part.manager]
			Expect(ok).To(BeTrue(), "no status entry of %s", part.manager)
			for _, p := range part.owns {
				Expect(managedfields.Owns(e, managedfields.Path(p...))).To(BeTrue(), "%s does not own %v", part.manager, p)
			}
			for _, p := range part.not {
				Expect(managedfields.Owns(e, managedfields.Path(p...))).To(BeFalse(), "%s owns %v", part.manager, p)
			}
		}
		Expect(k8s.Delete(ctx, b)).To(Succeed())
		Eventually(func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(b), &v1alpha1.PodIdentityBinding{}) }, timeout, interval).ShouldNot(Succeed())
	})
})
