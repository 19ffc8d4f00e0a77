package controllers_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// refuseStatusLabel on a binding makes the API server refuse every write to
// its status (a ValidatingAdmissionPolicy installed by refuseStatusWrites):
// the test hook for a status the operator cannot record.
const refuseStatusLabel = "test.podidentity.io/refuse-status"

// refuseStatusWrites installs, once, an admission policy that denies updates
// of the status subresource of bindings labelled refuseStatusLabel.
func refuseStatusWrites() {
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "test-refuse-binding-status"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptrTo(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{v1alpha1.GroupVersion.Group}, APIVersions: []string{"*"},
						Resources: []string{"podidentitybindings/status"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `!has(object.metadata.labels) || !('` + refuseStatusLabel + `' in object.metadata.labels)`,
				Message:    "status writes refused by the test hook",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test-refuse-binding-status"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}
	for _, o := range []client.Object{policy, binding} {
		Expect(client.IgnoreAlreadyExists(k8s.Create(ctx, o))).To(Succeed())
	}
	if refuseStatusActive {
		return
	}
	// The API server loads policies asynchronously: wait until a labelled
	// binding's status write is refused.
	probe := newBinding(newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true"}), "refuse-probe", "refuse-probe")
	probe.Labels = map[string]string{refuseStatusLabel: "true"}
	probe.Spec.Permissions[0].Actions = []string{"dynamodb:GetItemz"} // never reconciled into IAM
	probe.Finalizers = []string{"test.podidentity.io/hold"}
	Expect(k8s.Create(ctx, probe)).To(Succeed())
	// Refused by the policy, not by a conflict with the operator's own
	// status write of the probe (which would end the wait too early).
	Eventually(func() error {
		p := &v1alpha1.PodIdentityBinding{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(probe), p); err != nil {
			return err
		}
		p.Status.RoleName = "probe"
		err := k8s.Status().Update(ctx, p)
		switch {
		case err == nil:
			return errors.New("a labelled binding's status write was accepted: the policy is not in effect yet")
		case !strings.Contains(err.Error(), "refused by the test hook"):
			return err
		}
		return nil
	}, timeout, interval).Should(Succeed())
	Eventually(func() error {
		p := &v1alpha1.PodIdentityBinding{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(probe), p); err != nil {
			return client.IgnoreNotFound(err)
		}
		p.Finalizers = nil
		if err := k8s.Update(ctx, p); err != nil {
			return err
		}
		return client.IgnoreNotFound(k8s.Delete(ctx, p))
	}, timeout, interval).Should(Succeed())
	refuseStatusActive = true
}

// refuseStatusActive is set once the refusing policy is in effect.
var refuseStatusActive bool

func ptrTo[T any](v T) *T { return &v }

// deleteRoleDirectly deletes a role the operator let go of, through the SDK.
func deleteRoleDirectly(name string) {
	for _, p := range inlinePolicyNames(name) {
		_, err := iamc.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(p)})
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
	}
	for _, p := range attachedPolicies(name) {
		_, err := iamc.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(name), PolicyArn: aws.String(p)})
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
	}
	_, err := iamc.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(name)})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
}

// counterSum sums a counter family the operator exports.
func counterSum(name string) float64 { return metricSum(name, nil) }

// reconciles counts controller-runtime's reconciles of one controller.
func reconciles(controller string) float64 {
	return metricSum("controller_runtime_reconcile_total", func(m *dto.Metric) bool { return labelValue(m, "controller") == controller })
}

// namespaceUnderGuardrail creates a namespace (past the webhook when
// bypass is set) and a guardrail that selects it alone, deleted after the
// spec.
func namespaceUnderGuardrail(name string, bypass bool, spec v1alpha1.PodIdentityGuardrailSpec) string {
	key := fmt.Sprintf("%s-%d-%d", name, GinkgoParallelProcess(), nsCounter.Add(1))
	labels := map[string]string{name: key}
	if bypass {
		labels[bypassWebhookLabel] = "true"
	}
	ns := newNamespaceWithLabels(labels)
	g := guardrail(key, map[string]string{name: key}, spec)
	ExpectWithOffset(1, k8s.Create(ctx, g)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, g))).To(Succeed()) })
	return ns
}

// One spec per defect of the hostile-tenant review (issue 17), each
// reproducing the tenant's steps end to end on envtest and moto. Each fails
// on the code before the fix.
var _ = Describe("Hostile-tenant regressions (issue 17)", func() {
	var tenant string
	BeforeEach(func() {
		tenant = newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true"})
	})

	It("defect 1: an oversized spec cannot make the status unwritable", func() {
		b := newBinding(tenant, "huge", "huge")
		b.Spec.Permissions = nil
		for range 10 {
			st := statement(nil, "*")
			for range 100 {
				st.Actions = append(st.Actions, "iam:*")
			}
			b.Spec.Permissions = append(b.Spec.Permissions, st)
		}
		Expect(k8s.Create(ctx, b)).To(Succeed())
		Eventually(readyReason(tenant, "huge"), timeout, interval).Should(Equal(v1alpha1.ReasonGuardrailViolation))
		msg := condition(tenant, "huge", v1alpha1.ConditionReady).Message
		Expect(len(msg)).To(BeNumerically("<=", 4096))
		Expect(msg).To(ContainSubstring("more ("))
		deleteBinding(tenant, "huge")
	})

	It("defect 1: a role whose creation the status never recorded is found by its tags and retired", func() {
		refuseStatusWrites()
		Expect(k8s.Create(ctx, newBinding(tenant, "app", "app"))).To(Succeed())
		first := waitReady(tenant, "app").Status.RoleName
		failures := counterSum("podidentity_status_write_failures_total")

		By("the status becomes unwritable and the role is renamed: the new role exists, status does not know it")
		b := getBinding(tenant, "app")
		b.Labels = map[string]string{refuseStatusLabel: "true"}
		Expect(k8s.Update(ctx, b)).To(Succeed())
		b = getBinding(tenant, "app")
		b.Spec.RoleName = tenant + "_unrecorded"
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(func() error { _, err := getRole(tenant + "_unrecorded"); return err }, timeout, interval).Should(Succeed())
		Eventually(func() float64 { return counterSum("podidentity_status_write_failures_total") }, timeout, interval).Should(BeNumerically(">", failures))
		Eventually(func() []string { return eventReasons(tenant, "app") }, timeout, interval).Should(ContainElement("StatusWriteFailed"))
		Expect(getBinding(tenant, "app").Status.OwnedRoles).NotTo(ContainElement(HaveField("Name", tenant+"_unrecorded")))

		By("the status is writable again and the role renamed once more")
		b = getBinding(tenant, "app")
		b.Labels = nil
		b.Spec.RoleName = tenant + "_current"
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(func() string { return getBinding(tenant, "app").Status.RoleName }, timeout, interval).Should(Equal(tenant + "_current"))

		By("the unrecorded role is retired by the drift sweep, from its tags alone")
		Eventually(roleGone(tenant+"_unrecorded"), 4*syncPeriod, interval).Should(BeTrue())
		Expect(roleGone(first)()).To(BeTrue())
		waitReady(tenant, "app")
		deleteBinding(tenant, "app")
		Expect(roleGone(tenant + "_current")()).To(BeTrue())
	})

	It("defect 1: a role whose binding vanished without the operator becomes a Retain record", func() {
		Expect(k8s.Create(ctx, newBinding(tenant, "gone", "gone"))).To(Succeed())
		name := waitReady(tenant, "gone").Status.RoleName

		By("the tenant removes the finalizer and deletes the binding")
		b := getBinding(tenant, "gone")
		b.Finalizers = nil
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Expect(k8s.Delete(ctx, b)).To(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(b), b)) }, timeout, interval).Should(BeTrue())

		By("two sweeps later the role is tagged as retained")
		Eventually(func() string { return snapshotRole(name).Tags["podidentity.io/retained"] }, 4*syncPeriod, interval).Should(Equal("true"))
		Expect(counterSum("podidentity_orphan_roles_retired_total")).To(BeNumerically(">=", 1))
		deleteRoleDirectly(name)
	})

	It("defect 1: where Retain is forbidden, a role whose binding vanished is also stripped of its access", func() {
		ns := namespaceUnderGuardrail("vanish", true, v1alpha1.PodIdentityGuardrailSpec{ForbidRetain: true})
		Expect(k8s.Create(ctx, newBinding(ns, "gone", "gone"))).To(Succeed())
		name := waitReady(ns, "gone").Status.RoleName
		b := getBinding(ns, "gone")
		b.Finalizers = nil
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Expect(k8s.Delete(ctx, b)).To(Succeed())

		Eventually(func() string { return trustEffect(name) }, 4*syncPeriod, interval).Should(Equal("Deny"))
		Eventually(func() []string { return inlinePolicyNames(name) }, timeout, interval).Should(BeEmpty())
		Expect(snapshotRole(name).Tags["podidentity.io/retained"]).To(Equal("true"))
		deleteRoleDirectly(name)
	})

	It("defect 2: an invalid spec does not skip forbidRetain", func() {
		ns := namespaceUnderGuardrail("no-retain", true, v1alpha1.PodIdentityGuardrailSpec{ForbidRetain: true})
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		name := waitReady(ns, "app").Status.RoleName

		By("Retain plus one typo, then delete")
		b := getBinding(ns, "app")
		b.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
		b.Spec.Permissions = append(b.Spec.Permissions, statement([]string{"s3:GetObjekt"}, "arn:aws:s3:::bucket/*"))
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal(v1alpha1.ReasonInvalidSpec))
		deleteBinding(ns, "app")
		Expect(roleGone(name)()).To(BeTrue(), "the guardrail forbids Retain: the role goes with its binding")
	})

	It("defect 3: an invalid spec that moved away keeps its ServiceAccount; a second binding cannot take it and nothing loops", func() {
		Expect(k8s.Create(ctx, newBinding(tenant, "b1", "x"))).To(Succeed())
		b1 := waitReady(tenant, "b1")
		// No wait: created in the same second, the holder wins the tie by name.

		By("b1 moves to y with a typo; b2 then names x")
		b := getBinding(tenant, "b1")
		b.Spec.ServiceAccountName = "y"
		b.Spec.Permissions = append(b.Spec.Permissions, statement([]string{"s3:GetObjekt"}, "arn:aws:s3:::bucket/*"))
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(readyReason(tenant, "b1"), timeout, interval).Should(Equal(v1alpha1.ReasonInvalidSpec))
		Expect(k8s.Create(ctx, newBinding(tenant, "b2", "x"))).To(Succeed())
		Eventually(readyReason(tenant, "b2"), timeout, interval).Should(Equal(v1alpha1.ReasonServiceAccountConflict))

		By("only b1's role trusts x, and x is not rewritten over and over")
		Expect(annotation(tenant, "x", "eks.amazonaws.com/role-arn")()).To(Equal(b1.Status.RoleArn))
		Expect(roleGone(roleNameFor(tenant, "b2"))()).To(BeTrue())
		sa, err := serviceAccount(tenant, "x")
		Expect(err).NotTo(HaveOccurred())
		Consistently(func() string {
			sa, err := serviceAccount(tenant, "x")
			Expect(err).NotTo(HaveOccurred())
			return sa.ResourceVersion
		}, 2*syncPeriod, interval).Should(Equal(sa.ResourceVersion))

		By("fixing the typo moves b1 to y, and b2 takes x")
		b = getBinding(tenant, "b1")
		b.Spec.Permissions = b.Spec.Permissions[:len(b.Spec.Permissions)-1]
		Expect(k8s.Update(ctx, b)).To(Succeed())
		waitReady(tenant, "b1")
		b2 := waitReady(tenant, "b2")
		Eventually(annotation(tenant, "x", "eks.amazonaws.com/role-arn"), timeout, interval).Should(Equal(b2.Status.RoleArn))
		Expect(annotation(tenant, "y", "eks.amazonaws.com/role-arn")()).To(Equal(b1.Status.RoleArn))
		deleteBinding(tenant, "b1")
		deleteBinding(tenant, "b2")
	})

	It("defect 4: a guardrail's status write re-reconciles no binding", func() {
		key := "storm-" + tenant
		ns := newNamespaceWithLabels(map[string]string{"storm": key})
		for i := range 5 {
			Expect(k8s.Create(ctx, newBinding(ns, fmt.Sprintf("b%d", i), fmt.Sprintf("b%d", i)))).To(Succeed())
		}
		for i := range 5 {
			waitReady(ns, fmt.Sprintf("b%d", i))
		}
		g := guardrail(key, map[string]string{"storm": key}, v1alpha1.PodIdentityGuardrailSpec{DeniedActions: []string{"s3:Delete*"}})
		Expect(k8s.Create(ctx, g)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, g))).To(Succeed()) })
		Eventually(func() int32 {
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
			return g.Status.SelectedBindings
		}, timeout, interval).Should(Equal(int32(5)))
		// The guardrail's creation reconciles every binding once.
		waitQuiet(func() float64 { return reconciles("podidentitybinding") }, time.Second)

		waitQuiet(func() float64 { return reconciles("podidentitybinding-pods") }, time.Second)

		By("status writes to the guardrail")
		// Neither the binding controller nor the pods controller (which
		// reads a guardrail's forbidPodRestarts) reconciles for them.
		before, beforePods := reconciles("podidentitybinding"), reconciles("podidentitybinding-pods")
		for i := range 5 {
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
			g.Status.ViolatingBindings = int32(100 + i)
			Expect(k8s.Status().Update(ctx, g)).To(Succeed())
		}
		Consistently(func() float64 { return reconciles("podidentitybinding") - before }, 2*time.Second, interval).Should(BeNumerically("<", 5))
		Expect(reconciles("podidentitybinding-pods") - beforePods).To(BeNumerically("<", 5))
		for i := range 5 {
			deleteBinding(ns, fmt.Sprintf("b%d", i))
		}
	})

	It("defect 4: a storm of binding changes costs a guardrail one count per interval, and guardrails selecting other namespaces none", func() {
		key := "recount-" + tenant
		ns := newNamespaceWithLabels(map[string]string{"recount": key, bypassWebhookLabel: "true"}) // the edit below violates the guardrail
		spec := v1alpha1.PodIdentityGuardrailSpec{DeniedActions: []string{"s3:Delete*"}}
		here, elsewhere := guardrail(key, map[string]string{"recount": key}, spec), guardrail(key+"-elsewhere", map[string]string{"recount": key + "-elsewhere"}, spec)
		for _, g := range []*v1alpha1.PodIdentityGuardrail{here, elsewhere} {
			Expect(k8s.Create(ctx, g)).To(Succeed())
			DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, g))).To(Succeed()) })
		}
		status := func(g *v1alpha1.PodIdentityGuardrail) func() [2]int32 {
			return func() [2]int32 {
				Expect(k8s.Get(ctx, client.ObjectKeyFromObject(g), g)).To(Succeed())
				return [2]int32{g.Status.SelectedBindings, g.Status.ViolatingBindings}
			}
		}
		for i := range 3 {
			Expect(k8s.Create(ctx, newBinding(ns, fmt.Sprintf("keep%d", i), fmt.Sprintf("keep%d", i)))).To(Succeed())
		}
		Eventually(status(here), timeout, interval).Should(Equal([2]int32{3, 0}))
		// Longer than a recount's wait, so none is pending.
		waitQuiet(func() float64 { return reconciles("podidentityguardrail") }, 3*time.Second)

		By("the tenant creates and deletes bindings in a loop")
		before, start := reconciles("podidentityguardrail"), time.Now()
		for i := range 30 {
			b := newBinding(ns, fmt.Sprintf("loop%02d", i), fmt.Sprintf("loop%02d", i))
			Expect(k8s.Create(ctx, b)).To(Succeed())
			Expect(k8s.Delete(ctx, b)).To(Succeed())
		}
		storm := time.Since(start)
		waitQuiet(func() float64 { return reconciles("podidentityguardrail") }, 3*time.Second)
		// One count per 2 s while the storm lasted, and the last one after
		// it; before, every event counted every guardrail.
		Expect(reconciles("podidentityguardrail")-before).To(BeNumerically("<=", storm.Seconds()/2+2), "the storm took %s", storm)
		Expect(status(here)()).To(Equal([2]int32{3, 0}))
		Expect(status(elsewhere)()).To(Equal([2]int32{0, 0}))

		By("an edit is judged afresh: the verdict follows the binding's generation")
		b := getBinding(ns, "keep0")
		b.Spec.Permissions = append(b.Spec.Permissions, v1alpha1.PermissionStatement{Actions: []string{"s3:DeleteObject"}, Resources: []string{"arn:aws:s3:::bucket/*"}})
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(status(here), timeout, interval).Should(Equal([2]int32{3, 1}))
		for i := range 3 {
			deleteBinding(ns, fmt.Sprintf("keep%d", i))
		}
		Eventually(status(here), timeout, interval).Should(Equal([2]int32{0, 0}))
	})

	It("defect 4: a namespace's changes beyond its budget wait their turn, and another namespace's new binding does not wait for them", func() {
		const burst, perSecond = 3, 1.0
		saved := operatorOpts
		operatorOpts.NamespaceChangeQPS, operatorOpts.NamespaceChangeBurst = perSecond, burst
		restartOperator()
		DeferCleanup(func() {
			operatorOpts = saved
			restartOperator()
		})
		storm, quiet := newNamespace(), newNamespace()
		const n = 12
		// handled counts the storm's bindings the operator has reconciled:
		// any Ready condition at all.
		handled := func() int {
			list := &v1alpha1.PodIdentityBindingList{}
			Expect(k8s.List(ctx, list, client.InNamespace(storm))).To(Succeed())
			count := 0
			for _, b := range list.Items {
				if condition(storm, b.Name, v1alpha1.ConditionReady) != nil {
					count++
				}
			}
			return count
		}
		// withinBudget: never more handled than the burst plus the rate
		// since the first create (and one for rounding).
		start := time.Now()
		withinBudget := func() bool {
			return float64(handled()) <= burst+perSecond*time.Since(start).Seconds()+1
		}
		deferred := metricSum("podidentity_changes_deferred_total", nil)
		firstDeferred := deferred
		for i := range n {
			Expect(k8s.Create(ctx, newBinding(storm, fmt.Sprintf("b%02d", i), fmt.Sprintf("sa%02d", i)))).To(Succeed())
		}
		Expect(k8s.Create(ctx, newBinding(quiet, "app", "app"))).To(Succeed())
		waitReady(quiet, "app")
		Expect(handled()).To(BeNumerically("<", n), "the quiet namespace's binding waited for the storm's")
		Expect(withinBudget()).To(BeTrue())
		Expect(metricSum("podidentity_changes_deferred_total", nil)).To(BeNumerically(">", deferred))

		By("bindings created and deleted while their namespace's line waits never reach a worker")
		const loops = 20
		deferred, before, beforePods := metricSum("podidentity_changes_deferred_total", nil), reconciles("podidentitybinding"), reconciles("podidentitybinding-pods")
		for i := range loops {
			b := newBinding(storm, fmt.Sprintf("loop%02d", i), fmt.Sprintf("loop%02d", i))
			Expect(k8s.Create(ctx, b)).To(Succeed())
			Expect(k8s.Delete(ctx, b)).To(Succeed())
		}
		Eventually(func() float64 { return metricSum("podidentity_changes_deferred_total", nil) - deferred }, timeout, interval).Should(BeNumerically(">=", loops))
		// Meanwhile the line's head gets a token a second (a reconcile or
		// two each); before the line, every loop cost two or three.
		Consistently(func() float64 { return reconciles("podidentitybinding") - before }, 2*time.Second, interval).Should(BeNumerically("<", loops/2))
		// Nor does the pods controller see them (a binding without a role has no pods to count).
		Expect(reconciles("podidentitybinding-pods") - beforePods).To(BeNumerically("<", loops/2))

		By("edits of a binding while its namespace's line waits are one change, handled at its latest generation")
		waitReady(storm, "b00")
		deferred = metricSum("podidentity_changes_deferred_total", nil)
		var edited *v1alpha1.PodIdentityBinding
		for i := range 10 {
			edited = getBinding(storm, "b00")
			base := edited.DeepCopy()
			edited.Spec.Permissions[0].Resources = []string{fmt.Sprintf("arn:aws:dynamodb:us-east-1:123456789012:table/edit%d", i)}
			Expect(k8s.Patch(ctx, edited, client.MergeFrom(base))).To(Succeed())
		}
		Eventually(func() int64 {
			if c := condition(storm, "b00", v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
				return c.ObservedGeneration
			}
			return 0
		}, timeout, interval).Should(Equal(edited.Generation))
		// One wait per turn in line, not one per edit (a turn that comes
		// mid-edits handles the generation it sees; the later edits wait
		// again).
		Expect(metricSum("podidentity_changes_deferred_total", nil)-deferred).To(BeNumerically("<=", 2), "ten edits waited in line as more than one change")

		By("the storm's bindings are handled at the budget's pace, all of them in the end")
		Eventually(func(g Gomega) {
			g.Expect(withinBudget()).To(BeTrue(), "more changes handled than the budget allows")
			g.Expect(handled()).To(Equal(n))
		}, timeout, interval).Should(Succeed())
		var roles []string
		for i := range n {
			roles = append(roles, waitReady(storm, fmt.Sprintf("b%02d", i)).Status.RoleName)
		}
		// Each change waited in line once at most: a reconcile of a change
		// already paid for (another event right after it was handled, from
		// a cache that does not show its status yet) is not charged again.
		Expect(metricSum("podidentity_changes_deferred_total", nil) - firstDeferred).To(BeNumerically("<=", n-burst+loops+2))

		By("deletions are changes too: every role goes, at most at the budget's pace")
		start = time.Now()
		for i := range n {
			Expect(k8s.Delete(ctx, getBinding(storm, fmt.Sprintf("b%02d", i)))).To(Succeed())
		}
		gone := func() int {
			count := 0
			for _, name := range roles {
				if roleGone(name)() {
					count++
				}
			}
			return count
		}
		Eventually(func(g Gomega) {
			g.Expect(float64(gone())).To(BeNumerically("<=", burst+perSecond*time.Since(start).Seconds()+1), "more deletions handled than the budget allows")
			g.Expect(gone()).To(Equal(n))
		}, timeout, interval).Should(Succeed())
		deleteBinding(quiet, "app")
	})

	It("defect 2: switching to Retain after deletion, past the webhook, does not keep a role a guardrail forbids keeping", func() {
		ns := namespaceUnderGuardrail("late-retain", false, v1alpha1.PodIdentityGuardrailSpec{ForbidRetain: true}) // the webhook sees this namespace
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		name := waitReady(ns, "app").Status.RoleName

		By("IAM refuses the delete, so the finalizer holds the binding")
		proxy.FailActions("DeleteRole")
		DeferCleanup(func() { proxy.FailActions() })
		b := getBinding(ns, "app")
		Expect(k8s.Delete(ctx, b)).To(Succeed())
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal(v1alpha1.ReasonDeleteFailed))

		By("the tenant patches deletionPolicy to Retain; admission lets a binding being deleted through")
		b = getBinding(ns, "app")
		b.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
		Expect(k8s.Update(ctx, b)).To(Succeed())
		proxy.FailActions()
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, &v1alpha1.PodIdentityBinding{}))
		}, timeout, interval).Should(BeTrue())
		Expect(roleGone(name)()).To(BeTrue(), "the guardrail forbids Retain, whatever the spec says at deletion")
	})

	It("defect 7: the README's guardrail example, with the fields that allow role assumption and run-as actions, is accepted and reaches the rules", func() {
		root, err := testenv.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		readme, err := os.ReadFile(filepath.Join(root, "README.md"))
		Expect(err).NotTo(HaveOccurred())
		block := regexp.MustCompile("(?s)```yaml\n(apiVersion: iam.podidentity.io/v1alpha1\nkind: PodIdentityGuardrail\n.*?)```").FindSubmatch(readme)
		Expect(block).NotTo(BeNil(), "the README shows a PodIdentityGuardrail")
		g := &v1alpha1.PodIdentityGuardrail{}
		Expect(yaml.UnmarshalStrict(block[1], g)).To(Succeed(), "every field the README shows exists")
		Expect(g.Spec.AllowedAssumableRoles).NotTo(BeEmpty())
		Expect(g.Spec.AllowedRunAsActions).NotTo(BeEmpty())
		g.Name = "readme-" + tenant
		g.Spec.NamespaceSelector = metav1.LabelSelector{MatchLabels: map[string]string{"readme": g.Name}}
		Expect(k8s.Create(ctx, g)).To(Succeed(), "the API server and the guardrail webhook accept it")
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, g))).To(Succeed()) })

		By("the operator's rules carry the fields, as read back through the API server")
		got := &v1alpha1.PodIdentityGuardrail{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(g), got)).To(Succeed())
		rule := guard.FromGuardrail(got)
		Expect(rule.AllowedAssumableRoles).To(Equal(g.Spec.AllowedAssumableRoles))
		Expect(rule.AllowedRunAsActions).To(Equal(g.Spec.AllowedRunAsActions))
	})
})
