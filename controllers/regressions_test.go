package controllers_test

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// roleSnapshot is everything about a role a write could change, read through
// the SDK: trust, inline documents, attachments, tags and boundary.
type roleSnapshot struct {
	Trust    string
	Inline   map[string]string
	Attached []string
	Tags     map[string]string
	Boundary string
}

func snapshotRole(name string) roleSnapshot {
	r, err := getRole(name)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	s := roleSnapshot{Trust: aws.ToString(r.AssumeRolePolicyDocument), Inline: map[string]string{}, Tags: map[string]string{}, Attached: attachedPolicies(name)}
	if r.PermissionsBoundary != nil {
		s.Boundary = aws.ToString(r.PermissionsBoundary.PermissionsBoundaryArn)
	}
	for _, p := range inlinePolicyNames(name) {
		out, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(p)})
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
		s.Inline[p] = aws.ToString(out.PolicyDocument)
	}
	tags, err := iamc.ListRoleTags(ctx, &iam.ListRoleTagsInput{RoleName: aws.String(name)})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	for _, t := range tags.Tags {
		s.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return s
}

// namesNoRole is true when the ServiceAccount is gone (the operator deletes
// the ones it created) or carries no role annotation.
func namesNoRole(ns, name string) func() bool {
	return func() bool {
		sa, err := serviceAccount(ns, name)
		if apierrors.IsNotFound(err) {
			return true
		}
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
		return sa.Annotations["eks.amazonaws.com/role-arn"] == ""
	}
}

// trustEffect is the Effect of the role's first trust statement.
func trustEffect(name string) string {
	return trustOf(name)["Statement"].([]any)[0].(map[string]any)["Effect"].(string)
}

// One spec per defect of the tenant-escape review (issue 7, defects 1-4),
// each reproducing the tenant's steps end to end on envtest and moto. The
// randomized sequence in invariants_test.go covers their combinations.
var _ = Describe("Tenant-escape regressions", func() {
	var (
		tenantKey string
		tenant    string // a namespace past a bypassed webhook, selected by tenantKey
	)
	readWrite := func() []v1alpha1.PermissionStatement {
		return []v1alpha1.PermissionStatement{
			{Sid: "Read", Actions: []string{"dynamodb:GetItem"}, Resources: []string{"arn:aws:dynamodb:us-east-1:123456789012:table/orders"}},
			{Sid: "Purge", Actions: []string{"s3:DeleteObject"}, Resources: []string{"arn:aws:s3:::bucket/*"}},
		}
	}
	tighten := func() {
		Expect(k8s.Create(ctx, guardrail(tenantKey, map[string]string{"tenant": tenantKey}, v1alpha1.PodIdentityGuardrailSpec{
			DeniedActions: []string{"s3:Delete*"}}))).To(Succeed())
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: tenantKey}}))).To(Succeed())
		})
	}
	BeforeEach(func() {
		tenantKey = "escape-" + newNamespace()
		tenant = newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true", "tenant": tenantKey})
	})

	It("defect 1: narrowing never writes to another binding's role named in spec.roleName", func() {
		victimNS := newNamespace()
		victim := newBinding(victimNS, "victim", "victim")
		victim.Spec.Permissions = readWrite()
		Expect(k8s.Create(ctx, victim)).To(Succeed())
		victim = waitReady(victimNS, "victim")
		before := snapshotRole(victim.Status.RoleName)

		b := newBinding(tenant, "app", "app")
		b.Spec.Permissions = readWrite()
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(tenant, "app")
		own := b.Status.RoleName

		By("the tenant points spec.roleName at the victim's role and adds an invalid action")
		b.Spec.RoleName = victim.Status.RoleName
		b.Spec.Permissions = append(b.Spec.Permissions, statement([]string{"dynamodb:GetItemz"}, "*"))
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(readyReason(tenant, "app"), timeout, interval).ShouldNot(Equal("True"))

		By("a guardrail tightens: the tenant's own role is narrowed, the victim's is not touched")
		tighten()
		Consistently(func() roleSnapshot { return snapshotRole(victim.Status.RoleName) }, syncPeriod+time.Second, interval).Should(Equal(before))
		Eventually(func() []string { return inlineActions(own) }, timeout, interval).Should(ConsistOf("dynamodb:GetItem"))
		Expect(getBinding(victimNS, "victim").Status.RoleName).To(Equal(victim.Status.RoleName))
		waitReady(victimNS, "victim")
		deleteBinding(tenant, "app")
		Expect(snapshotRole(victim.Status.RoleName)).To(Equal(before))
		Expect(roleGone(own)()).To(BeTrue())
		deleteBinding(victimNS, "victim")
	})

	It("defect 2: a RoleConflict does not freeze the binding's current role", func() {
		foreign := tenant + "_foreign"
		createForeignRole(foreign)
		foreignBefore := snapshotRole(foreign)

		b := newBinding(tenant, "app", "app")
		b.Spec.Permissions = readWrite()
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(tenant, "app")
		own := b.Status.RoleName

		By("spec.roleName names a role the operator does not own")
		b.Spec.RoleName = foreign
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(readyReason(tenant, "app"), timeout, interval).Should(Equal("RoleConflict"))

		By("a guardrail tightening still narrows the current role")
		tighten()
		Eventually(func() []string { return inlineActions(own) }, timeout, interval).Should(ConsistOf("dynamodb:GetItem"))

		By("drift on the current role is still corrected")
		_, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(own), PolicyName: aws.String("backdoor"),
			PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}`)})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(own), PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return inlinePolicyNames(own) }, timeout, interval).Should(Equal([]string{"podidentity-permissions"}))
		Eventually(func() []string { return attachedPolicies(own) }, timeout, interval).Should(BeEmpty())
		Expect(readyReason(tenant, "app")()).To(Equal("RoleConflict"))
		Expect(snapshotRole(foreign)).To(Equal(foreignBefore))
		Expect(annotation(tenant, "app", "eks.amazonaws.com/role-arn")()).To(Equal(b.Status.RoleArn))

		deleteBinding(tenant, "app")
		Expect(roleGone(own)()).To(BeTrue())
		Expect(snapshotRole(foreign)).To(Equal(foreignBefore))
	})

	It("defect 3: a binding that loses its ServiceAccount keeps no usable role (Delete deletes, Retain parks)", func() {
		Expect(k8s.Create(ctx, newBinding(tenant, "a-holder", "shared"))).To(Succeed())
		holder := waitReady(tenant, "a-holder")
		// No wait: created in the same second, the holder wins the tie by name.

		deleter := newBinding(tenant, "deleter", "deleter")
		deleter.Spec.Permissions = readWrite()
		keeper := newBinding(tenant, "keeper", "keeper")
		keeper.Spec.Permissions = readWrite()
		keeper.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
		Expect(k8s.Create(ctx, deleter)).To(Succeed())
		Expect(k8s.Create(ctx, keeper)).To(Succeed())
		deleter, keeper = waitReady(tenant, "deleter"), waitReady(tenant, "keeper")

		By("both move onto the ServiceAccount the older binding holds")
		for _, b := range []*v1alpha1.PodIdentityBinding{deleter, keeper} {
			b.Spec.ServiceAccountName = "shared"
			Expect(k8s.Update(ctx, b)).To(Succeed())
		}
		Eventually(readyReason(tenant, "deleter"), timeout, interval).Should(Equal("ServiceAccountConflict"))
		Eventually(readyReason(tenant, "keeper"), timeout, interval).Should(Equal("ServiceAccountConflict"))

		By("Delete: the role is gone and its old ServiceAccount no longer names it")
		Eventually(roleGone(deleter.Status.RoleName), timeout, interval).Should(BeTrue())
		Eventually(namesNoRole(tenant, "deleter"), timeout, interval).Should(BeTrue())

		By("Retain: the role stays but trusts nobody and allows nothing")
		Eventually(func() string { return trustEffect(keeper.Status.RoleName) }, timeout, interval).Should(Equal("Deny"))
		Eventually(func() []string { return inlinePolicyNames(keeper.Status.RoleName) }, timeout, interval).Should(BeEmpty())
		Expect(attachedPolicies(keeper.Status.RoleName)).To(BeEmpty())
		Eventually(namesNoRole(tenant, "keeper"), timeout, interval).Should(BeTrue())
		Expect(eventReasons(tenant, "keeper")).To(ContainElement("RoleParked"))

		By("only the holder's role trusts the shared ServiceAccount")
		Expect(annotation(tenant, "shared", "eks.amazonaws.com/role-arn")()).To(Equal(holder.Status.RoleArn))
		Consistently(func() string { return trustEffect(keeper.Status.RoleName) }, syncPeriod+time.Second, interval).Should(Equal("Deny"))

		By("when the conflict ends, the next binding in line gets a working role again")
		deleteBinding(tenant, "a-holder")
		deleteBinding(tenant, "deleter")
		keeper = waitReady(tenant, "keeper")
		Expect(trustEffect(keeper.Status.RoleName)).To(Equal("Allow"))
		Expect(inlineActions(keeper.Status.RoleName)).To(ConsistOf("dynamodb:GetItem", "s3:DeleteObject"))
		Eventually(annotation(tenant, "shared", "eks.amazonaws.com/role-arn"), timeout, interval).Should(Equal(keeper.Status.RoleArn))
		keeper.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
		Expect(k8s.Update(ctx, keeper)).To(Succeed())
		Eventually(func() v1alpha1.DeletionPolicy { return getBinding(tenant, "keeper").Spec.DeletionPolicy }, timeout, interval).Should(Equal(v1alpha1.DeletionPolicyDelete))
		deleteBinding(tenant, "keeper")
		Expect(roleGone(keeper.Status.RoleName)()).To(BeTrue())
	})

	It("defect 4: a role whose creation failed halfway is recorded at once and deleted with its binding, renamed or not", func() {
		By("IAM accepts CreateRole but fails PutRolePolicy")
		proxy.FailActions("PutRolePolicy")
		DeferCleanup(func() { proxy.FailActions() })
		b := newBinding(tenant, "partial", "partial")
		b.Spec.Permissions = readWrite()
		Expect(k8s.Create(ctx, b)).To(Succeed())
		first := roleNameFor(tenant, "partial")
		Eventually(func() []v1alpha1.RoleReference { return getBinding(tenant, "partial").Status.OwnedRoles }, timeout, interval).
			Should(ContainElement(HaveField("Name", first)))
		r, err := getRole(first)
		Expect(err).NotTo(HaveOccurred())
		Expect(getBinding(tenant, "partial").Status.OwnedRoles).To(ContainElement(v1alpha1.RoleReference{Name: first, ID: aws.ToString(r.RoleId)}))
		Eventually(readyReason(tenant, "partial"), timeout, interval).Should(Equal("IAMUnavailable"))

		By("a rename while IAM still fails creates the new role and remembers both")
		b = getBinding(tenant, "partial")
		b.Spec.RoleName = tenant + "_renamed"
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(func() []v1alpha1.RoleReference { return getBinding(tenant, "partial").Status.OwnedRoles }, timeout, interval).
			Should(ContainElement(HaveField("Name", tenant+"_renamed")))

		By("deleting the binding deletes both roles, though the permissions were never written")
		deleteBinding(tenant, "partial")
		Expect(roleGone(first)()).To(BeTrue(), "the half-created first role is not leaked")
		Expect(roleGone(tenant + "_renamed")()).To(BeTrue())
	})
})
