package controllers_test

import (
	"fmt"
	"sort"
	"strings"
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

// barePod creates a pod of sa with no owner.
func barePod(ns, name, sa string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
	ExpectWithOffset(1, k8s.Create(ctx, p)).To(Succeed())
	return p
}

// deployment creates a Deployment of replicas pods running as sa. The
// suite's kube-controller-manager makes its ReplicaSet and the ReplicaSet's
// pods (admitted through the pod identity webhook); they never run, as no
// scheduler or kubelet does. Recreate: a restart replaces pods that never
// become ready (a rolling update would wait for them).
func deployment(ns, name, sa string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(replicas), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}}}
	ExpectWithOffset(1, k8s.Create(ctx, d)).To(Succeed())
	EventuallyWithOffset(1, workloadPods(ns, name), timeout, interval).Should(HaveLen(int(replicas)))
	return d
}

// replicaSetOf is the Deployment's newest ReplicaSet, as its controller made it.
func replicaSetOf(d *appsv1.Deployment) *appsv1.ReplicaSet {
	var newest *appsv1.ReplicaSet
	EventuallyWithOffset(1, func() error {
		list := &appsv1.ReplicaSetList{}
		if err := k8s.List(ctx, list, client.InNamespace(d.Namespace)); err != nil {
			return err
		}
		newest = nil
		for i := range list.Items {
			rs := &list.Items[i]
			if c := metav1.GetControllerOf(rs); c != nil && c.UID == d.UID &&
				(newest == nil || rs.Annotations["deployment.kubernetes.io/revision"] > newest.Annotations["deployment.kubernetes.io/revision"]) {
				newest = rs
			}
		}
		if newest == nil {
			return fmt.Errorf("no ReplicaSet of %s yet", d.Name)
		}
		return nil
	}, timeout, interval).Should(Succeed())
	return newest
}

// workloadPods are the names of the live pods of the workload labelled
// app=name, sorted.
func workloadPods(ns, name string) func() []string {
	return func() []string {
		list := &corev1.PodList{}
		ExpectWithOffset(1, k8s.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"app": name})).To(Succeed())
		var names []string
		for _, p := range list.Items {
			if p.DeletionTimestamp.IsZero() {
				names = append(names, p.Name)
			}
		}
		sort.Strings(names)
		return names
	}
}

// roleOfPods is the AWS_ROLE_ARN each live pod of the workload was
// injected with ("" for none).
func roleOfPods(ns, name string) func() []string {
	return func() []string {
		list := &corev1.PodList{}
		ExpectWithOffset(1, k8s.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"app": name})).To(Succeed())
		var roles []string
		for _, p := range list.Items {
			if p.DeletionTimestamp.IsZero() {
				roles = append(roles, envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"])
			}
		}
		return roles
	}
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
		d := deployment(ns, "web", "early", 2)
		firstRS := replicaSetOf(d)
		early := workloadPods(ns, "web")()
		barePod(ns, "bare", "early")

		// Reported first with Never: with Rollout the Deployment controller
		// replaces the pods within moments, so the stale state would pass
		// before the spec could look.
		Expect(k8s.Create(ctx, newBinding(ns, "early", "early"))).To(Succeed())
		b := waitReady(ns, "early")
		Eventually(podCounts(ns, "early"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 0, Stale: 3}))
		c := condition(ns, "early", v1alpha1.ConditionPodsCurrent)
		Expect(c.Status).To(Equal(metav1.ConditionFalse))
		Expect(c.Reason).To(Equal(v1alpha1.ReasonStalePods))
		Expect(c.Message).To(ContainSubstring("bare, " + strings.Join(early, ", ")))
		Expect(eventReasons(ns, "early")).To(ContainElement("StalePods"))
		Expect(readyReason(ns, "early")()).To(Equal("True"), "stale pods do not make the binding itself unready")

		By("with podRestartPolicy Rollout the Deployment is restarted as kubectl rollout restart does, for this role")
		b.Spec.PodRestartPolicy = v1alpha1.PodRestartPolicyRollout
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(templateAnnotations(ns, "web"), timeout, interval).Should(HaveKeyWithValue("podidentity.io/restarted-for-role", b.Status.RoleArn))
		restartedAt := templateAnnotations(ns, "web")()["kubectl.kubernetes.io/restartedAt"]
		_, err := time.Parse(time.RFC3339, restartedAt)
		Expect(err).NotTo(HaveOccurred())
		Expect(eventReasons(ns, "early")).To(ContainElement("RolloutRestarted"))

		By("the Deployment controller rolls out a new ReplicaSet whose pods get the credentials from the webhook")
		Eventually(func() string { return replicaSetOf(d).Name }, timeout, interval).ShouldNot(Equal(firstRS.Name))
		Eventually(roleOfPods(ns, "web"), timeout, interval).Should(Equal([]string{b.Status.RoleArn, b.Status.RoleArn}))
		Eventually(podCounts(ns, "early"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 2, Stale: 1}))
		Expect(condition(ns, "early", v1alpha1.ConditionPodsCurrent).Message).To(ContainSubstring("1 pods have no Deployment, StatefulSet or DaemonSet"))

		By("the bare pod stays stale, and the Deployment is not restarted again for the same role")
		Consistently(func() string { return templateAnnotations(ns, "web")()["kubectl.kubernetes.io/restartedAt"] }, syncPeriod, interval).Should(Equal(restartedAt))
		Expect(k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bare"}}, client.GracePeriodSeconds(0))).To(Succeed())
		Eventually(podCounts(ns, "early"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 2, Stale: 0}))
		Expect(condition(ns, "early", v1alpha1.ConditionPodsCurrent).Reason).To(Equal(v1alpha1.ReasonPodsCurrent))

		By("a role change makes the running pods stale, and the Deployment is restarted and rolled out for the new role")
		b = getBinding(ns, "early")
		b.Spec.RoleName = ns + "_renamed"
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(func() string { return getBinding(ns, "early").Status.RoleArn }, timeout, interval).Should(HaveSuffix("/" + ns + "_renamed"))
		newARN := getBinding(ns, "early").Status.RoleArn
		Eventually(templateAnnotations(ns, "web"), timeout, interval).Should(HaveKeyWithValue("podidentity.io/restarted-for-role", newARN))
		Eventually(roleOfPods(ns, "web"), timeout, interval).Should(Equal([]string{newARN, newARN}))
		Eventually(podCounts(ns, "early"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 2, Stale: 0}))
		deleteBinding(ns, "early")
	})

	It("with the default podRestartPolicy Never only reports, and a guardrail can forbid Rollout", func() {
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}})).To(Succeed())
		deployment(ns, "api", "app", 1)
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
		critical := deployment(ns, "critical", "payments", 1) // another team's, another ServiceAccount
		deployment(ns, "own", "app", 1)

		// References with made-up UIDs are deleted by the garbage collector
		// as on a cluster; TestOwnersFollowOnlyRealUIDs covers them.
		By("before the binding, pods of its ServiceAccount claim critical as owner by its real UID, directly and through its ReplicaSet")
		forged := func(name string, ref metav1.OwnerReference) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: []metav1.OwnerReference{ref}},
				Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
			Expect(k8s.Create(ctx, p)).To(Succeed())
		}
		forged("by-uid", metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "critical", UID: critical.UID})
		rs := replicaSetOf(critical)
		forged("via-rs", metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID})

		// A pod that another team's StatefulSet really controls (its
		// controller reference, its labels, an ordinal the StatefulSet
		// keeps): with OrderedReady the StatefulSet waits forever for its
		// pod 0 to be Ready (no kubelet), so it neither creates nor deletes
		// pod 1, and OnDelete never replaces it. Only the pod template's
		// ServiceAccount (payments) tells the operator it is not the
		// binding's workload.
		labels := map[string]string{"app": "ledger"}
		ledger := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger"}, Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels}, ServiceName: "ledger",
			PodManagementPolicy: appsv1.OrderedReadyPodManagement, UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{ServiceAccountName: "payments", Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}}}
		Expect(k8s.Create(ctx, ledger)).To(Succeed())
		Eventually(workloadPods(ns, "ledger"), timeout, interval).Should(Equal([]string{"ledger-0"}))
		claimed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger-1", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "ledger", UID: ledger.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
		Expect(k8s.Create(ctx, claimed)).To(Succeed())

		b := newBinding(ns, "app", "app")
		b.Spec.PodRestartPolicy = v1alpha1.PodRestartPolicyRollout
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "app")

		By("only the binding's own Deployment is restarted and rolled out")
		Eventually(templateAnnotations(ns, "own"), timeout, interval).Should(HaveKeyWithValue("podidentity.io/restarted-for-role", b.Status.RoleArn))
		Eventually(roleOfPods(ns, "own"), timeout, interval).Should(Equal([]string{b.Status.RoleArn}))
		Eventually(podCounts(ns, "app"), timeout, interval).Should(Equal(&v1alpha1.PodCounts{Current: 1, Stale: 3}))
		Consistently(func() map[string]string {
			out := map[string]string{}
			for k, v := range templateAnnotations(ns, "critical")() {
				out["critical "+k] = v
			}
			ss := &appsv1.StatefulSet{}
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ledger), ss)).To(Succeed())
			for k, v := range ss.Spec.Template.Annotations {
				out["ledger "+k] = v
			}
			return out
		}, syncPeriod, interval).ShouldNot(Or(HaveKey("critical kubectl.kubernetes.io/restartedAt"), HaveKey("ledger kubectl.kubernetes.io/restartedAt")))
		Expect(workloadPods(ns, "critical")()).To(HaveLen(1))
		Expect(workloadPods(ns, "ledger")()).To(Equal([]string{"ledger-0", "ledger-1"}), "the claimed pod stayed the StatefulSet's throughout")
		Expect(condition(ns, "app", v1alpha1.ConditionPodsCurrent).Message).To(ContainSubstring("3 pods have no Deployment, StatefulSet or DaemonSet running as ServiceAccount app"))
		deleteBinding(ns, "app")
	})
})
