package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// ownedPod creates a running-looking pod controlled by owner (envtest has no
// controllers, so the chain Deployment -> ReplicaSet -> Pod is built by hand).
func ownedPod(ns, name, sa string, owner client.Object, kind string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: owner.GetName(), UID: owner.GetUID(), Controller: ptr.To(true)}}
	}
	ExpectWithOffset(1, k8s.Create(ctx, p)).To(Succeed())
	return p
}

func deployment(ns, name, sa string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}}}
	ExpectWithOffset(1, k8s.Create(ctx, d)).To(Succeed())
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-abc12",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template}}
	ExpectWithOffset(1, k8s.Create(ctx, rs)).To(Succeed())
	return d
}

func replicaSetOf(d *appsv1.Deployment) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{}
	ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: d.Name + "-abc12"}, rs)).To(Succeed())
	return rs
}

func podCounts(ns, name string) func() *v1alpha1.PodCounts {
	return func() *v1alpha1.PodCounts { return getBinding(ns, name).Status.Pods }
}

func templateAnnotations(ns, name string) func() map[string]string {
	return func() map[string]string {
		d := &appsv1.Deployment{}
		ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
		return d.Spec.Template.Annotations
	}
}

var _ = Describe("Pods that would run without credentials", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("reports pods started before the annotation, restarts their Deployment once per role, and never bare pods", func() {
		By("pods start before their ServiceAccount has a role")
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "early"}})).To(Succeed())
		d := deployment(ns, "web", "early")
		ownedPod(ns, "web-abc12-1", "early", replicaSetOf(d), "ReplicaSet")
		ownedPod(ns, "web-abc12-2", "early", replicaSetOf(d), "ReplicaSet")
		ownedPod(ns, "bare", "early", nil, "")

		b := newBinding(ns, "early", "early")
		b.Spec.PodRestartPolicy = v1alpha1.PodRestartPolicyRollout
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "early")
		Eventually(podCounts(ns, "early"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 0, Stale: 3}))
		c := condition(ns, "early", v1alpha1.ConditionPodsCurrent)
		Expect(c.Status).To(Equal(metav1.ConditionFalse))
		Expect(c.Reason).To(Equal(v1alpha1.ReasonStalePods))
		Expect(c.Message).To(ContainSubstring("bare, web-abc12-1, web-abc12-2"))
		Expect(c.Message).To(ContainSubstring("1 pods have no Deployment, StatefulSet or DaemonSet"))
		Expect(eventReasons(ns, "early")).To(ContainElement("StalePods"))
		Expect(readyReason(ns, "early")()).To(Equal("True"), "stale pods do not make the binding itself unready")

		By("the Deployment is restarted as kubectl rollout restart does, for this role")
		Eventually(templateAnnotations(ns, "web"), timeout, interval).Should(HaveKeyWithValue("podidentity.io/restarted-for-role", b.Status.RoleArn))
		restartedAt := templateAnnotations(ns, "web")()["kubectl.kubernetes.io/restartedAt"]
		_, err := time.Parse(time.RFC3339, restartedAt)
		Expect(err).NotTo(HaveOccurred())
		Expect(eventReasons(ns, "early")).To(ContainElement("RolloutRestarted"))

		By("while the old pods are still there, it is not restarted again")
		Consistently(func() string { return templateAnnotations(ns, "web")()["kubectl.kubernetes.io/restartedAt"] }, syncPeriod, interval).Should(Equal(restartedAt))

		By("the rollout replaces the pods: new ones get the credentials from the webhook")
		for _, n := range []string{"web-abc12-1", "web-abc12-2", "bare"} {
			Expect(k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}}, client.GracePeriodSeconds(0))).To(Succeed())
		}
		ownedPod(ns, "web-def34-1", "early", replicaSetOf(d), "ReplicaSet")
		Eventually(podCounts(ns, "early"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 1, Stale: 0}))
		Expect(condition(ns, "early", v1alpha1.ConditionPodsCurrent).Reason).To(Equal(v1alpha1.ReasonPodsCurrent))

		By("a role change makes the running pod stale, and the Deployment is restarted for the new role")
		b = getBinding(ns, "early")
		b.Spec.RoleName = ns + "_renamed"
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(func() string { return getBinding(ns, "early").Status.RoleArn }, timeout, interval).Should(HaveSuffix("/" + ns + "_renamed"))
		newARN := getBinding(ns, "early").Status.RoleArn
		Eventually(podCounts(ns, "early"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 0, Stale: 1}))
		Eventually(templateAnnotations(ns, "web"), timeout, interval).Should(HaveKeyWithValue("podidentity.io/restarted-for-role", newARN))
		Expect(templateAnnotations(ns, "web")()["kubectl.kubernetes.io/restartedAt"]).NotTo(BeEmpty())
		deleteBinding(ns, "early")
	})

	It("with the default podRestartPolicy Never only reports, and a guardrail can forbid Rollout", func() {
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}})).To(Succeed())
		d := deployment(ns, "api", "app")
		ownedPod(ns, "api-abc12-1", "app", replicaSetOf(d), "ReplicaSet")
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		waitReady(ns, "app")
		Eventually(podCounts(ns, "app"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 0, Stale: 1}))
		Expect(condition(ns, "app", v1alpha1.ConditionPodsCurrent).Message).To(ContainSubstring("set spec.podRestartPolicy: Rollout"))
		Consistently(templateAnnotations(ns, "api"), syncPeriod, interval).ShouldNot(HaveKey("kubectl.kubernetes.io/restartedAt"))

		By("a guardrail forbids restarts: admission denies Rollout")
		key := "norestart-" + ns
		Expect(k8s.Create(ctx, guardrail(key, map[string]string{"kubernetes.io/metadata.name": ns},
			v1alpha1.PodIdentityGuardrailSpec{ForbidPodRestarts: true}))).To(Succeed())
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: key}}))).To(Succeed())
		})
		b := getBinding(ns, "app")
		b.Spec.PodRestartPolicy = v1alpha1.PodRestartPolicyRollout
		err := k8s.Update(ctx, b)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.podRestartPolicy"))
		Expect(err.Error()).To(ContainSubstring("Rollout is forbidden"))
		Expect(templateAnnotations(ns, "api")()).NotTo(HaveKey("kubectl.kubernetes.io/restartedAt"))
		deleteBinding(ns, "app")
	})

	It("issue 17 defect 9: a pod with a forged owner reference never restarts a workload that is not the binding's", func() {
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}})).To(Succeed())
		critical := deployment(ns, "critical", "payments") // another team's, another ServiceAccount
		own := deployment(ns, "own", "app")

		By("before the binding, pods of its ServiceAccount claim critical as owner: by name with a made-up UID, by its real UID, and through its ReplicaSet")
		forged := func(name string, ref metav1.OwnerReference) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: []metav1.OwnerReference{ref}},
				Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
			Expect(k8s.Create(ctx, p)).To(Succeed())
		}
		forged("by-name", metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "critical", UID: "made-up", Controller: ptr.To(true)})
		forged("by-uid", metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "critical", UID: critical.UID, Controller: ptr.To(true)})
		rs := replicaSetOf(critical)
		forged("via-rs", metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)})
		forged("via-rs-name", metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: "made-up", Controller: ptr.To(true)})
		ownedPod(ns, "own-abc12-1", "app", replicaSetOf(own), "ReplicaSet")

		b := newBinding(ns, "app", "app")
		b.Spec.PodRestartPolicy = v1alpha1.PodRestartPolicyRollout
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "app")

		By("only the binding's own Deployment is restarted")
		Eventually(templateAnnotations(ns, "own"), timeout, interval).Should(HaveKeyWithValue("podidentity.io/restarted-for-role", b.Status.RoleArn))
		Eventually(podCounts(ns, "app"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 0, Stale: 5}))
		Consistently(templateAnnotations(ns, "critical"), syncPeriod, interval).ShouldNot(HaveKey("kubectl.kubernetes.io/restartedAt"))
		Expect(condition(ns, "app", v1alpha1.ConditionPodsCurrent).Message).To(ContainSubstring("4 pods have no Deployment, StatefulSet or DaemonSet running as ServiceAccount app"))
		deleteBinding(ns, "app")
	})
})
