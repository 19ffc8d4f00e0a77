package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// What the operator does together with a cluster's own controllers: the
// suite runs kube-controller-manager (namespace controller, garbage
// collector, ...) beside envtest's API server, so nothing here is simulated.
var _ = Describe("With the cluster's controllers", func() {
	It("deleting a namespace deletes its Delete bindings' roles, keeps its Retain bindings' roles tagged, and the namespace goes away", func() {
		ns := newNamespace()
		Expect(k8s.Create(ctx, newBinding(ns, "gone", "gone"))).To(Succeed())
		kept := newBinding(ns, "kept", "kept")
		kept.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
		Expect(k8s.Create(ctx, kept)).To(Succeed())
		gone := waitReady(ns, "gone")
		kept = waitReady(ns, "kept")

		Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		By("the namespace controller deletes the bindings; their finalizers run; then the namespace is removed")
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Name: ns}, &corev1.Namespace{}))
		}, 2*timeout, interval).Should(BeTrue())
		Expect(roleGone(gone.Status.RoleName)()).To(BeTrue(), "the Delete binding's role outlived its namespace")
		r, err := getRole(kept.Status.RoleName)
		Expect(err).NotTo(HaveOccurred(), "the Retain binding's role")
		Expect(tagOf(r, "podidentity.io/retained")).To(Equal("true"))
	})

	It("a binding removed without its finalizer while the operator is down: the garbage collector deletes the ServiceAccount it created, the next operator's sweep retires the role as a Retain record", func() {
		// The validating webhook fails closed while no operator serves it:
		// this namespace is not sent to it, as where an admin bypasses it.
		ns := newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true"})
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")
		sa, err := serviceAccount(ns, "app")
		Expect(err).NotTo(HaveOccurred())
		Expect(metav1.GetControllerOf(sa)).NotTo(BeNil())
		Expect(metav1.GetControllerOf(sa).UID).To(Equal(b.UID))

		By("an admin strips the finalizer while no operator runs")
		stopOperator()
		DeferCleanup(func() {
			if operatorCancel == nil {
				startOperator()
			}
		})
		patch := client.MergeFrom(b.DeepCopy())
		b.Finalizers = nil
		Expect(k8s.Patch(ctx, b, patch)).To(Succeed())
		Expect(k8s.Delete(ctx, b)).To(Succeed())
		Eventually(func() bool {
			_, err := serviceAccount(ns, "app")
			return apierrors.IsNotFound(err)
		}, timeout, interval).Should(BeTrue(), "the ServiceAccount owned by the deleted binding was not garbage-collected")

		By("the operator comes back: its drift sweep finds the role of a binding that no longer exists and retires it (decision 59)")
		startOperator()
		Eventually(func() string {
			r, err := getRole(b.Status.RoleName)
			if err != nil {
				return err.Error()
			}
			return tagOf(r, "podidentity.io/retained")
		}, timeout, interval).Should(Equal("true"))
	})
})
