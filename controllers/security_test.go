package controllers_test

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

func statement(actions []string, resources ...string) v1alpha1.PermissionStatement {
	return v1alpha1.PermissionStatement{Actions: actions, Resources: resources}
}

func guardrail(name string, selector map[string]string, spec v1alpha1.PodIdentityGuardrailSpec) *v1alpha1.PodIdentityGuardrail {
	spec.NamespaceSelector = metav1.LabelSelector{MatchLabels: selector}
	return &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// inlineActions reads the actions of the role's permission policy from IAM.
func inlineActions(roleName string) []string {
	out, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String("podidentity-permissions")})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var actions []string
	for _, st := range decoded(out.PolicyDocument)["Statement"].([]any) {
		for _, a := range st.(map[string]any)["Action"].([]any) {
			actions = append(actions, a.(string))
		}
	}
	return actions
}

var _ = Describe("Secure by default", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("rejects typos at admission with a suggestion", func() {
		b := newBinding(ns, "typo", "typo")
		b.Spec.Permissions = []v1alpha1.PermissionStatement{statement([]string{"dyanmodb:GetItem"}, "*")}
		err := k8s.Create(ctx, b)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(`did you mean "dynamodb:GetItem"?`))
		Expect(err.Error()).To(ContainSubstring("spec.permissions[0].actions[0]"))

		b.Spec.Permissions = []v1alpha1.PermissionStatement{statement([]string{"s3:GetObjects"}, "arn:aws:s3:::b/*")}
		err = k8s.Create(ctx, b)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(`did you mean "s3:GetObject"?`))
	})

	It("rejects specs over IAM's quotas before anything reaches IAM", func() {
		b := newBinding(ns, "quota", "quota")
		for i := range 11 {
			b.Spec.ManagedPolicyArns = append(b.Spec.ManagedPolicyArns, "arn:aws:iam::123456789012:policy/p"+string(rune('a'+i)))
		}
		err := k8s.Create(ctx, b)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("11 managed policies, over the limit of 10"))
	})

	It("enforces the built-in guardrails", func() {
		for _, actions := range [][]string{{"*"}, {"iam:*"}, {"iam:PassRole"}, {"organizations:ListAccounts"}} {
			b := newBinding(ns, "escalate", "escalate")
			b.Spec.Permissions = []v1alpha1.PermissionStatement{statement(actions, "*")}
			err := k8s.Create(ctx, b)
			Expect(err).To(HaveOccurred(), "%v must be denied", actions)
			Expect(err.Error()).To(ContainSubstring("guardrail built-in"))
		}
		b := newBinding(ns, "assume", "assume")
		b.Spec.Permissions = []v1alpha1.PermissionStatement{statement([]string{"sts:AssumeRole"}, "*")}
		err := k8s.Create(ctx, b)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("on a wildcard resource"))
	})

	It("warns about write actions on every resource but allows them", func() {
		manifest := `apiVersion: iam.podidentity.io/v1alpha1
kind: PodIdentityBinding
metadata:
  name: broad
  namespace: ` + ns + `
spec:
  serviceAccountName: broad
  permissions:
  - actions: ["s3:PutObject"]
    resources: ["*"]
`
		out, err := kubectl(manifest, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("Warning: spec.permissions[0] grants write actions (such as s3:PutObject) on every resource"))
		waitReady(ns, "broad")
		deleteBinding(ns, "broad")
	})

	It("applies guardrails per namespace: one tenant's guardrail does not loosen or tighten another's, and a deny beats an allow", func() {
		teamA := newNamespaceWithLabels(map[string]string{"team": ns + "-a"})
		teamB := newNamespaceWithLabels(map[string]string{"team": ns + "-b"})
		Expect(k8s.Create(ctx, guardrail(ns+"-allow-s3", map[string]string{"team": ns + "-a"}, v1alpha1.PodIdentityGuardrailSpec{
			AllowedActions: []string{"s3:*"}}))).To(Succeed())
		Expect(k8s.Create(ctx, guardrail(ns+"-no-deletes", map[string]string{"team": ns + "-a"}, v1alpha1.PodIdentityGuardrailSpec{
			DeniedActions: []string{"s3:Delete*"}}))).To(Succeed())
		DeferCleanup(func() {
			for _, n := range []string{ns + "-allow-s3", ns + "-no-deletes"} {
				Expect(client.IgnoreNotFound(k8s.Delete(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: n}}))).To(Succeed())
			}
		})

		deleter := func(namespace string) *v1alpha1.PodIdentityBinding {
			b := newBinding(namespace, "cleaner", "cleaner")
			b.Spec.Permissions = []v1alpha1.PermissionStatement{statement([]string{"s3:DeleteObject"}, "arn:aws:s3:::bucket/*")}
			return b
		}
		By("team-a: the deny wins over the allow")
		// Admission reads guardrails from the operator's cache: wait until it
		// has seen both (a dry run goes through the webhook, creates nothing).
		Eventually(func() error { return k8s.Create(ctx, deleter(teamA), client.DryRunAll) }, timeout, interval).Should(HaveOccurred())
		err := k8s.Create(ctx, deleter(teamA))
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("s3:DeleteObject, which is denied (guardrail " + ns + "-no-deletes)"))

		By("team-a: the allow list keeps other services out")
		other := newBinding(teamA, "dynamo", "dynamo")
		err = k8s.Create(ctx, other)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("not among the allowed actions (guardrail " + ns + "-allow-s3)"))

		By("team-b is untouched by team-a's guardrails")
		Expect(k8s.Create(ctx, deleter(teamB))).To(Succeed())
		Expect(k8s.Create(ctx, newBinding(teamB, "dynamo", "dynamo"))).To(Succeed())
		waitReady(teamB, "cleaner")
		waitReady(teamB, "dynamo")

		By("team-a accepts what both guardrails allow")
		reader := newBinding(teamA, "reader", "reader")
		reader.Spec.Permissions = []v1alpha1.PermissionStatement{statement([]string{"s3:GetObject"}, "arn:aws:s3:::bucket/*")}
		Expect(k8s.Create(ctx, reader)).To(Succeed())
		waitReady(teamA, "reader")

		By("guardrail status counts the bindings it selects")
		Eventually(func() v1alpha1.PodIdentityGuardrailStatus {
			g := &v1alpha1.PodIdentityGuardrail{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: ns + "-no-deletes"}, g)).To(Succeed())
			return g.Status
		}, timeout, interval).Should(And(
			HaveField("SelectedBindings", int32(1)), HaveField("ViolatingBindings", int32(0))))

		for _, n := range []string{"cleaner", "dynamo"} {
			deleteBinding(teamB, n)
		}
		deleteBinding(teamA, "reader")
	})

	It("rejects guardrails with unknown actions", func() {
		err := k8s.Create(ctx, guardrail(ns+"-typo", map[string]string{"x": "y"}, v1alpha1.PodIdentityGuardrailSpec{DeniedActions: []string{"s3:DeleteObjekt"}}))
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(`did you mean "s3:DeleteObject"?`))
	})

	It("fails closed: tightening a guardrail removes the violating permissions from an existing role", func() {
		tenant := newNamespaceWithLabels(map[string]string{"tenant": ns})
		b := newBinding(tenant, "app", "app")
		b.Spec.Permissions = []v1alpha1.PermissionStatement{
			{Sid: "Read", Actions: []string{"dynamodb:GetItem"}, Resources: []string{"arn:aws:dynamodb:us-east-1:123456789012:table/orders"}},
			{Sid: "Purge", Actions: []string{"s3:DeleteObject"}, Resources: []string{"arn:aws:s3:::bucket/*"}},
		}
		b.Spec.MaxSessionDuration = aws.Int32(7200)
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(tenant, "app")
		Expect(inlineActions(b.Status.RoleName)).To(ConsistOf("dynamodb:GetItem", "s3:DeleteObject"))

		By("an admin tightens the rules for the tenant")
		cap := int32(3600)
		Expect(k8s.Create(ctx, guardrail(ns+"-tighten", map[string]string{"tenant": ns}, v1alpha1.PodIdentityGuardrailSpec{
			DeniedActions: []string{"s3:Delete*"}, MaxSessionDuration: &cap}))).To(Succeed())
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: ns + "-tighten"}}))).To(Succeed())
		})

		Eventually(readyReason(tenant, "app"), timeout, interval).Should(Equal("GuardrailViolation"))
		msg := condition(tenant, "app", v1alpha1.ConditionReady).Message
		Expect(msg).To(ContainSubstring("Removed from the role: statement 1 (Purge): s3:DeleteObject on arn:aws:s3:::bucket/*"))
		Expect(msg).To(ContainSubstring("max session duration capped at 3600"))
		Eventually(func() []string { return inlineActions(b.Status.RoleName) }, timeout, interval).Should(ConsistOf("dynamodb:GetItem"))
		r, err := getRole(b.Status.RoleName)
		Expect(err).NotTo(HaveOccurred())
		Expect(aws.ToInt32(r.MaxSessionDuration)).To(Equal(int32(3600)))
		Expect(eventReasons(tenant, "app")).To(ContainElement("GuardrailViolation"))
		Eventually(func() int32 {
			g := &v1alpha1.PodIdentityGuardrail{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: ns + "-tighten"}, g)).To(Succeed())
			return g.Status.ViolatingBindings
		}, timeout, interval).Should(Equal(int32(1)))

		By("the narrowed role stays narrow across sync periods")
		Consistently(func() []string { return inlineActions(b.Status.RoleName) }, syncPeriod+time.Second, interval).Should(ConsistOf("dynamodb:GetItem"))

		By("removing the guardrail restores what the binding declares")
		Expect(k8s.Delete(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: ns + "-tighten"}})).To(Succeed())
		waitReady(tenant, "app")
		Eventually(func() []string { return inlineActions(b.Status.RoleName) }, timeout, interval).Should(ConsistOf("dynamodb:GetItem", "s3:DeleteObject"))
		deleteBinding(tenant, "app")
	})

	It("creates nothing in IAM for a new binding that breaks a guardrail past a bypassed webhook", func() {
		bypass := newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true"})
		b := newBinding(bypass, "sneaky", "sneaky")
		b.Spec.Permissions = []v1alpha1.PermissionStatement{statement([]string{"iam:CreateRole"}, "*")}
		Expect(k8s.Create(ctx, b)).To(Succeed())
		Eventually(readyReason(bypass, "sneaky"), timeout, interval).Should(Equal("GuardrailViolation"))
		Expect(condition(bypass, "sneaky", v1alpha1.ConditionReady).Message).To(ContainSubstring("iam:CreateRole"))
		Consistently(roleGone(roleNameFor(bypass, "sneaky")), 2*time.Second, interval).Should(BeTrue())
		deleteBinding(bypass, "sneaky")
	})
})

var _ = Describe("Fail closed with an invalid spec", func() {
	It("narrows the role a binding left behind even while its new spec is invalid", func() {
		key := "tenant-" + newNamespace()
		ns := newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true", "tenant": key})
		b := newBinding(ns, "app", "app")
		b.Spec.Permissions = []v1alpha1.PermissionStatement{
			{Sid: "Read", Actions: []string{"dynamodb:GetItem"}, Resources: []string{"arn:aws:dynamodb:us-east-1:123456789012:table/orders"}},
			{Sid: "Purge", Actions: []string{"s3:DeleteObject"}, Resources: []string{"arn:aws:s3:::bucket/*"}},
		}
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "app")

		By("the spec gets a new statement with a typo past a bypassed webhook")
		b.Spec.Permissions = append(b.Spec.Permissions, v1alpha1.PermissionStatement{Sid: "Typo", Actions: []string{"dynamodb:GetItemz"}, Resources: []string{"*"}})
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal("InvalidSpec"))
		Expect(inlineActions(b.Status.RoleName)).To(ConsistOf("dynamodb:GetItem", "s3:DeleteObject"))

		By("a guardrail is tightened meanwhile")
		Expect(k8s.Create(ctx, guardrail(key, map[string]string{"tenant": key}, v1alpha1.PodIdentityGuardrailSpec{
			DeniedActions: []string{"s3:Delete*"}}))).To(Succeed())
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: key}}))).To(Succeed())
		})
		Eventually(func() []string { return inlineActions(b.Status.RoleName) }, timeout, interval).Should(ConsistOf("dynamodb:GetItem"))
		Expect(condition(ns, "app", v1alpha1.ConditionReady).Message).To(ContainSubstring(`did you mean "dynamodb:GetItem"?`))
		Eventually(func() string { return eventNotes(ns, "app", "GuardrailEnforced") }, timeout, interval).
			Should(ContainSubstring("narrowed IAM role " + b.Status.RoleName))
		Consistently(func() []string { return inlineActions(b.Status.RoleName) }, syncPeriod+time.Second, interval).Should(ConsistOf("dynamodb:GetItem"))
		deleteBinding(ns, "app")
	})
})
