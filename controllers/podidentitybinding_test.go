package controllers_test

import (
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

func roleNameFor(ns, binding string) string { return clusterName + "_" + ns + "_" + binding }

// issuerKey is the condition-key prefix IAM uses for the cluster's issuer:
// the issuer without its scheme, trailing slash included.
func issuerKey() string {
	return strings.TrimPrefix(issuerURL, "https://")
}

var _ = Describe("PodIdentityBinding", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("creates a correctly trusted role, its permissions and the ServiceAccount, and the token exchange works end to end", func() {
		b := newBinding(ns, "orders-reader", "orders")
		b.Spec.ManagedPolicyArns = []string{"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}
		b.Spec.MaxSessionDuration = aws.Int32(7200)
		b.Spec.Tags = map[string]string{"team": "orders"}
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "orders-reader")
		roleName := roleNameFor(ns, "orders-reader")

		By("status names the role")
		Expect(b.Status.RoleName).To(Equal(roleName))
		Expect(b.Status.RoleArn).To(Equal("arn:aws:iam::123456789012:role" + rolePath + roleName))
		Expect(b.Status.ObservedGeneration).To(Equal(b.Generation))
		for _, t := range []string{v1alpha1.ConditionRoleSynced, v1alpha1.ConditionServiceAccountSynced} {
			c := condition(ns, "orders-reader", t)
			Expect(c).NotTo(BeNil())
			Expect(c.Status).To(Equal(metav1.ConditionTrue))
		}
		Expect(b.Finalizers).To(ContainElement("iam.podidentity.io/finalizer"))

		By("the role in IAM has path, session duration, boundary and ownership tags")
		r, err := getRole(roleName)
		Expect(err).NotTo(HaveOccurred())
		Expect(aws.ToString(r.Path)).To(Equal(rolePath))
		Expect(aws.ToInt32(r.MaxSessionDuration)).To(Equal(int32(7200)))
		Expect(r.PermissionsBoundary).NotTo(BeNil())
		Expect(aws.ToString(r.PermissionsBoundary.PermissionsBoundaryArn)).To(Equal(boundaryARN))
		tags := map[string]string{}
		for _, t := range r.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		Expect(tags).To(Equal(map[string]string{
			"podidentity.io/cluster": clusterName, "podidentity.io/namespace": ns,
			"podidentity.io/binding": "orders-reader", "team": "orders",
		}))

		By("the trust policy allows exactly this ServiceAccount and audience")
		trust := trustOf(roleName)
		stmts := trust["Statement"].([]any)
		Expect(stmts).To(HaveLen(1))
		st := stmts[0].(map[string]any)
		Expect(st["Effect"]).To(Equal("Allow"))
		Expect(st["Principal"]).To(Equal(map[string]any{"Federated": []any{providerARN}}))
		Expect(st["Action"]).To(Equal([]any{"sts:AssumeRoleWithWebIdentity"}))
		Expect(st["Condition"]).To(Equal(map[string]any{"StringEquals": map[string]any{
			issuerKey() + ":sub": []any{"system:serviceaccount:" + ns + ":orders"},
			issuerKey() + ":aud": []any{"sts.amazonaws.com"},
		}}))

		By("the permission policy is the binding's statements")
		Expect(inlinePolicyNames(roleName)).To(Equal([]string{"podidentity-permissions"}))
		pol, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String("podidentity-permissions")})
		Expect(err).NotTo(HaveOccurred())
		perm := decoded(pol.PolicyDocument)
		Expect(perm["Statement"]).To(Equal([]any{map[string]any{
			"Effect": "Allow", "Action": []any{"dynamodb:GetItem", "dynamodb:Query"},
			"Resource": []any{"arn:aws:dynamodb:us-east-1:123456789012:table/orders"},
		}}))
		Expect(attachedPolicies(roleName)).To(Equal([]string{"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}))

		By("the ServiceAccount was created, annotated, labelled and owned by the binding")
		sa, err := serviceAccount(ns, "orders")
		Expect(err).NotTo(HaveOccurred())
		Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", b.Status.RoleArn))
		Expect(sa.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "podidentity-operator"))
		Expect(sa.OwnerReferences).To(HaveLen(1))
		Expect(sa.OwnerReferences[0].UID).To(Equal(b.UID))

		By("a token for the ServiceAccount carries exactly the claims the trust policy requires")
		token, claims := requestToken(ns, "orders", []string{"sts.amazonaws.com"}, nil)
		cond := st["Condition"].(map[string]any)["StringEquals"].(map[string]any)
		// The condition key prefix is the token's issuer without its scheme,
		// and nothing else removed: envtest's issuer ends in "/".
		Expect(claims.Iss).To(HaveSuffix("/"))
		issuerPrefix := strings.TrimPrefix(claims.Iss, "https://")
		Expect(cond).To(HaveKey(issuerPrefix + ":sub"))
		Expect(cond[issuerPrefix+":sub"]).To(Equal([]any{claims.Sub}))
		Expect(claims.Aud).To(Equal([]string{"sts.amazonaws.com"}))
		Expect(cond[issuerPrefix+":aud"]).To(Equal([]any{claims.Aud[0]}))
		// The provider ARN names the same issuer.
		Expect(providerARN).To(HaveSuffix(":oidc-provider/" + issuerPrefix))

		By("STS exchanges the token for temporary credentials of the role")
		out, err := stsc.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
			RoleArn: aws.String(b.Status.RoleArn), RoleSessionName: aws.String("e2e"), WebIdentityToken: aws.String(token),
		})
		Expect(err).NotTo(HaveOccurred())
		Expect(aws.ToString(out.Credentials.AccessKeyId)).NotTo(BeEmpty())
		Expect(aws.ToString(out.Credentials.SessionToken)).NotTo(BeEmpty())
		Expect(aws.ToString(out.AssumedRoleUser.Arn)).To(ContainSubstring(roleName))

		By("one event tells what happened: the role was created for the ServiceAccount")
		Eventually(func() []string { return eventReasons(ns, "orders-reader") }, timeout, interval).
			Should(ContainElement("RoleCreated"))
		Expect(eventNotes(ns, "orders-reader", "RoleCreated")).To(Equal("created IAM role " + b.Status.RoleArn + " for ServiceAccount orders"))
		// Events are sent asynchronously: give a second one time to show up.
		Consistently(func() []string { return eventReasons(ns, "orders-reader") }, 2*time.Second, interval).Should(ConsistOf("RoleCreated"))

		deleteBinding(ns, "orders-reader")
	})

	It("makes no IAM write when the binding is in sync", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "quiet", "quiet"))).To(Succeed())
		waitReady(ns, "quiet")
		// Let every other binding settle too, then watch several sync periods.
		waitQuiet(iamWrites, syncPeriod)
		before := iamWrites()
		Expect(before).To(BeNumerically(">", 0), "creating the role must have counted IAM writes")
		sa, err := serviceAccount(ns, "quiet")
		Expect(err).NotTo(HaveOccurred())
		// An unrelated change to the ServiceAccount triggers a reconcile.
		sa.Labels["touched"] = "yes"
		Expect(k8s.Update(ctx, sa)).To(Succeed())
		Consistently(iamWrites, 2*syncPeriod, interval).Should(Equal(before))
		Expect(readyReason(ns, "quiet")()).To(Equal("True"))
		deleteBinding(ns, "quiet")
	})

	It("never removes what kubectl apply records on a binding, though its cache drops it", func() {
		b := newBinding(ns, "applied", "applied")
		lastApplied := `{"apiVersion":"iam.podidentity.io/v1alpha1","kind":"PodIdentityBinding","metadata":{"name":"applied"}}`
		b.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: lastApplied, "team": "payments"}
		Expect(k8s.Create(ctx, b)).To(Succeed())
		waitReady(ns, "applied")
		By("a spec change: finalizer, status and ServiceAccount writes all happen again")
		b = getBinding(ns, "applied")
		patch := client.MergeFrom(b.DeepCopy())
		b.Spec.Permissions[0].Actions = append(b.Spec.Permissions[0].Actions, "dynamodb:Scan")
		Expect(k8s.Patch(ctx, b, patch)).To(Succeed())
		Eventually(func() int64 {
			r := meta.FindStatusCondition(getBinding(ns, "applied").Status.Conditions, v1alpha1.ConditionReady)
			if r == nil || r.Status != metav1.ConditionTrue {
				return 0
			}
			return r.ObservedGeneration
		}, timeout, interval).Should(Equal(b.Generation))
		Expect(getBinding(ns, "applied").Annotations).To(Equal(map[string]string{corev1.LastAppliedConfigAnnotation: lastApplied, "team": "payments"}))
		deleteBinding(ns, "applied")
	})

	It("applies spec changes and reports them as updates", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "changing", "changing"))).To(Succeed())
		b := waitReady(ns, "changing")
		roleName := b.Status.RoleName
		b.Spec.Permissions[0].Actions = []string{"dynamodb:PutItem"}
		b.Spec.ManagedPolicyArns = []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}
		b.Spec.ServiceAccountToken = &v1alpha1.ServiceAccountTokenSettings{
			Audience: "my-audience", STSRegionalEndpoints: aws.Bool(true), ExpirationSeconds: aws.Int64(3600),
		}
		Expect(k8s.Update(ctx, b)).To(Succeed())
		// The provider does not list my-audience: the role and annotation
		// are applied, and Ready says why no token can use them.
		Eventually(readyReason(ns, "changing"), timeout, interval).Should(Equal(v1alpha1.ReasonAudienceNotRegistered))
		Expect(condition(ns, "changing", v1alpha1.ConditionRoleSynced).Status).To(Equal(metav1.ConditionTrue))
		pol, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String("podidentity-permissions")})
		Expect(err).NotTo(HaveOccurred())
		Expect(decoded(pol.PolicyDocument)["Statement"].([]any)[0].(map[string]any)["Action"]).To(Equal([]any{"dynamodb:PutItem"}))
		Expect(attachedPolicies(roleName)).To(Equal([]string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}))
		cond := trustOf(roleName)["Statement"].([]any)[0].(map[string]any)["Condition"].(map[string]any)["StringEquals"].(map[string]any)
		Expect(cond[issuerKey()+":aud"]).To(Equal([]any{"my-audience"}))
		sa, err := serviceAccount(ns, "changing")
		Expect(err).NotTo(HaveOccurred())
		Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/audience", "my-audience"))
		Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/sts-regional-endpoints", "true"))
		Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/token-expiration", "3600"))
		Expect(eventReasons(ns, "changing")).To(ContainElement("RoleUpdated"))

		By("dropping the token settings removes those annotations")
		b = getBinding(ns, "changing")
		b.Spec.ServiceAccountToken = nil
		Expect(k8s.Update(ctx, b)).To(Succeed())
		waitReady(ns, "changing")
		Eventually(func() map[string]string {
			sa, _ := serviceAccount(ns, "changing")
			return sa.Annotations
		}, timeout, interval).Should(And(Not(HaveKey("eks.amazonaws.com/audience")), HaveKey("eks.amazonaws.com/role-arn")))
		deleteBinding(ns, "changing")
	})

	It("corrects every kind of drift in IAM", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "drifty", "drifty"))).To(Succeed())
		b := waitReady(ns, "drifty")
		roleName := b.Status.RoleName
		rn := aws.String(roleName)
		wantTrust := trustOf(roleName)

		By("changing the role outside the operator")
		_, err := iamc.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: rn, PolicyDocument: aws.String(
			`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"` + providerARN + `"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringLike":{"` + issuerKey() + `:sub":"system:serviceaccount:*"}}}]}`)})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: rn, PolicyName: aws.String("podidentity-permissions"),
			PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: rn, PolicyName: aws.String("sneaky"),
			PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: rn, PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.DeleteRolePermissionsBoundary(ctx, &iam.DeleteRolePermissionsBoundaryInput{RoleName: rn})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.UpdateRole(ctx, &iam.UpdateRoleInput{RoleName: rn, MaxSessionDuration: aws.Int32(43200), Description: aws.String("hijacked")})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.TagRole(ctx, &iam.TagRoleInput{RoleName: rn, Tags: []types.Tag{{Key: aws.String("owner"), Value: aws.String("someone")}}})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.UntagRole(ctx, &iam.UntagRoleInput{RoleName: rn, TagKeys: []string{"podidentity.io/binding"}})
		Expect(err).NotTo(HaveOccurred())

		By("the operator restores all of it within a sync period")
		Eventually(func(g Gomega) {
			g.Expect(trustOf(roleName)).To(Equal(wantTrust))
			g.Expect(inlinePolicyNames(roleName)).To(Equal([]string{"podidentity-permissions"}))
			pol, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: rn, PolicyName: aws.String("podidentity-permissions")})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(decoded(pol.PolicyDocument)["Statement"].([]any)[0].(map[string]any)["Action"]).To(Equal([]any{"dynamodb:GetItem", "dynamodb:Query"}))
			g.Expect(attachedPolicies(roleName)).To(BeEmpty())
			r, err := getRole(roleName)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(r.PermissionsBoundary).NotTo(BeNil())
			g.Expect(aws.ToString(r.PermissionsBoundary.PermissionsBoundaryArn)).To(Equal(boundaryARN))
			g.Expect(aws.ToInt32(r.MaxSessionDuration)).To(Equal(int32(3600)))
			g.Expect(aws.ToString(r.Description)).To(ContainSubstring("managed by podidentity-operator"))
			tags := map[string]string{}
			for _, t := range r.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			g.Expect(tags).To(Equal(map[string]string{
				"podidentity.io/cluster": clusterName, "podidentity.io/namespace": ns, "podidentity.io/binding": "drifty"}))
		}, timeout, interval).Should(Succeed())

		By("each correction is an event")
		Eventually(func() string { return eventNotes(ns, "drifty", "DriftCorrected") }, timeout, interval).Should(And(
			ContainSubstring("TrustPolicy"), ContainSubstring("InlinePolicy"), ContainSubstring("ExtraInlinePolicy: inline policy sneaky"),
			ContainSubstring("ManagedPolicies: detach arn:aws:iam::aws:policy/AdministratorAccess"),
			ContainSubstring("PermissionsBoundary"), ContainSubstring("MaxSessionDuration"),
			ContainSubstring("Description"), ContainSubstring("Tags: set podidentity.io/binding"), ContainSubstring("Tags: remove owner")))
		Expect(readyReason(ns, "drifty")()).To(Equal("True"))
		deleteBinding(ns, "drifty")
	})

	It("recreates a role deleted out of band", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "phoenix", "phoenix"))).To(Succeed())
		b := waitReady(ns, "phoenix")
		rn := aws.String(b.Status.RoleName)
		_, err := iamc.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: rn, PolicyName: aws.String("podidentity-permissions")})
		Expect(err).NotTo(HaveOccurred())
		_, err = iamc.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: rn})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string {
			if _, err := getRole(b.Status.RoleName); err != nil {
				return nil
			}
			return inlinePolicyNames(b.Status.RoleName)
		}, timeout, interval).Should(Equal([]string{"podidentity-permissions"}))
		Eventually(func() string { return eventNotes(ns, "phoenix", "DriftCorrected") }, timeout, interval).
			Should(ContainSubstring("deleted outside the operator"))
		deleteBinding(ns, "phoenix")
	})

	It("never touches a role with its name that it does not own", func() {
		roleName := roleNameFor(ns, "squatter")
		createForeignRole(roleName)

		Expect(k8s.Create(ctx, newBinding(ns, "squatter", "squatter"))).To(Succeed())
		Eventually(readyReason(ns, "squatter"), timeout, interval).Should(Equal("RoleConflict"))
		Expect(condition(ns, "squatter", v1alpha1.ConditionReady).Message).To(ContainSubstring("not tagged as owned"))
		Consistently(func() []string { return inlinePolicyNames(roleName) }, 2*syncPeriod, interval).Should(BeEmpty())
		Expect(trustOf(roleName)["Statement"].([]any)[0].(map[string]any)["Principal"]).To(Equal(map[string]any{"Service": "ec2.amazonaws.com"}))
		_, err := serviceAccount(ns, "squatter")
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no ServiceAccount is created for a conflicting binding")

		By("deleting the binding leaves the foreign role alone")
		deleteBinding(ns, "squatter")
		_, err = getRole(roleName)
		Expect(err).NotTo(HaveOccurred())
	})

	It("lets the older of two bindings own a ServiceAccount", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "first", "shared"))).To(Succeed())
		first := waitReady(ns, "first")
		// No wait: created in the same second, the holder wins the tie by name.
		Expect(k8s.Create(ctx, newBinding(ns, "second", "shared"))).To(Succeed())
		Eventually(readyReason(ns, "second"), timeout, interval).Should(Equal("ServiceAccountConflict"))
		Expect(condition(ns, "second", v1alpha1.ConditionReady).Message).To(ContainSubstring("already bound by PodIdentityBinding first"))
		Consistently(annotation(ns, "shared", "eks.amazonaws.com/role-arn"), 2*syncPeriod, interval).Should(Equal(first.Status.RoleArn))
		Expect(roleGone(roleNameFor(ns, "second"))()).To(BeTrue(), "the losing binding creates no role")
		Expect(eventReasons(ns, "second")).To(ContainElement("ServiceAccountConflict"))

		By("when the older binding goes, the newer one takes over")
		deleteBinding(ns, "first")
		second := waitReady(ns, "second")
		Eventually(annotation(ns, "shared", "eks.amazonaws.com/role-arn"), timeout, interval).Should(Equal(second.Status.RoleArn))
		deleteBinding(ns, "second")
	})

	It("sets only its annotation on an existing ServiceAccount and restores it when removed or edited", func() {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "helm-sa",
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "Helm"},
			Annotations: map[string]string{"meta.helm.sh/release-name": "shop", "keep": "me"}}}
		Expect(k8s.Create(ctx, sa, client.FieldOwner("helm"))).To(Succeed())
		Expect(k8s.Create(ctx, newBinding(ns, "helmed", "helm-sa"))).To(Succeed())
		b := waitReady(ns, "helmed")
		Eventually(annotation(ns, "helm-sa", "eks.amazonaws.com/role-arn"), timeout, interval).Should(Equal(b.Status.RoleArn))
		got, err := serviceAccount(ns, "helm-sa")
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Labels).To(Equal(map[string]string{"app.kubernetes.io/managed-by": "Helm"}))
		Expect(got.Annotations).To(HaveKeyWithValue("keep", "me"))
		Expect(got.Annotations).To(HaveKeyWithValue("meta.helm.sh/release-name", "shop"))
		Expect(got.OwnerReferences).To(BeEmpty())

		// Restores must come from the ServiceAccount watch: they are expected
		// well within the sync period, which a periodic resync alone would
		// meet only by chance.
		watchDeadline := syncPeriod / 2

		By("removing the annotation")
		delete(got.Annotations, "eks.amazonaws.com/role-arn")
		Expect(k8s.Update(ctx, got)).To(Succeed())
		Eventually(annotation(ns, "helm-sa", "eks.amazonaws.com/role-arn"), watchDeadline, 50*time.Millisecond).Should(Equal(b.Status.RoleArn))

		By("editing the annotation")
		got, err = serviceAccount(ns, "helm-sa")
		Expect(err).NotTo(HaveOccurred())
		got.Annotations["eks.amazonaws.com/role-arn"] = "arn:aws:iam::999999999999:role/evil"
		Expect(k8s.Update(ctx, got)).To(Succeed())
		Eventually(annotation(ns, "helm-sa", "eks.amazonaws.com/role-arn"), watchDeadline, 50*time.Millisecond).Should(Equal(b.Status.RoleArn))
		Eventually(func() string { return eventNotes(ns, "helmed", "ServiceAccountUpdated") }, timeout, interval).
			Should(ContainSubstring("annotated ServiceAccount helm-sa with role ARN " + b.Status.RoleArn))

		By("deleting the binding removes only our annotation and keeps the ServiceAccount")
		deleteBinding(ns, "helmed")
		got, err = serviceAccount(ns, "helm-sa")
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Annotations).NotTo(HaveKey("eks.amazonaws.com/role-arn"))
		Expect(got.Annotations).To(HaveKeyWithValue("keep", "me"))
		Expect(got.Labels).To(Equal(map[string]string{"app.kubernetes.io/managed-by": "Helm"}))
		Expect(roleGone(b.Status.RoleName)()).To(BeTrue())
	})

	It("moves the trust and the annotation when serviceAccountName changes", func() {
		old := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "old-sa", Annotations: map[string]string{"keep": "me"}}}
		Expect(k8s.Create(ctx, old)).To(Succeed())
		Expect(k8s.Create(ctx, newBinding(ns, "mover", "old-sa"))).To(Succeed())
		b := waitReady(ns, "mover")
		Eventually(annotation(ns, "old-sa", "eks.amazonaws.com/role-arn"), timeout, interval).Should(Equal(b.Status.RoleArn))

		b.Spec.ServiceAccountName = "new-sa"
		Expect(k8s.Update(ctx, b)).To(Succeed())
		b = waitReady(ns, "mover")
		Expect(b.Status.ServiceAccountName).To(Equal("new-sa"))
		cond := trustOf(b.Status.RoleName)["Statement"].([]any)[0].(map[string]any)["Condition"].(map[string]any)["StringEquals"].(map[string]any)
		Expect(cond[issuerKey()+":sub"]).To(Equal([]any{"system:serviceaccount:" + ns + ":new-sa"}))
		Expect(annotation(ns, "new-sa", "eks.amazonaws.com/role-arn")()).To(Equal(b.Status.RoleArn))
		Eventually(annotation(ns, "old-sa", "eks.amazonaws.com/role-arn"), timeout, interval).Should(BeEmpty())
		Expect(annotation(ns, "old-sa", "keep")()).To(Equal("me"))
		deleteBinding(ns, "mover")
	})

	It("deletes the old role when the role name changes", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "renamer", "renamer"))).To(Succeed())
		b := waitReady(ns, "renamer")
		oldRole := b.Status.RoleName
		b.Spec.RoleName = ns + "_custom"
		Expect(k8s.Update(ctx, b)).To(Succeed())
		Eventually(func() string { return getBinding(ns, "renamer").Status.RoleName }, timeout, interval).Should(Equal(ns + "_custom"))
		waitReady(ns, "renamer")
		Eventually(roleGone(oldRole), timeout, interval).Should(BeTrue())
		_, err := getRole(ns + "_custom")
		Expect(err).NotTo(HaveOccurred())
		Expect(annotation(ns, "renamer", "eks.amazonaws.com/role-arn")()).To(HaveSuffix("/" + ns + "_custom"))
		deleteBinding(ns, "renamer")
		Expect(roleGone(ns + "_custom")()).To(BeTrue())
	})

	It("with deletionPolicy Delete removes the role and the ServiceAccount it created", func() {
		b := newBinding(ns, "doomed", "doomed")
		b.Spec.ManagedPolicyArns = []string{"arn:aws:iam::aws:policy/ReadOnlyAccess"}
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "doomed")
		deleteBinding(ns, "doomed")
		Expect(roleGone(b.Status.RoleName)()).To(BeTrue())
		_, err := serviceAccount(ns, "doomed")
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})

	It("with deletionPolicy Retain keeps the role and the ServiceAccount", func() {
		b := newBinding(ns, "keeper", "keeper")
		b.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "keeper")
		existing := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "existing"}}
		Expect(k8s.Create(ctx, existing)).To(Succeed())
		other := newBinding(ns, "keeper2", "existing")
		other.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
		Expect(k8s.Create(ctx, other)).To(Succeed())
		other = waitReady(ns, "keeper2")
		deleteBinding(ns, "keeper")
		deleteBinding(ns, "keeper2")
		Expect(annotation(ns, "existing", "eks.amazonaws.com/role-arn")()).To(Equal(other.Status.RoleArn))
		_, err := getRole(other.Status.RoleName)
		Expect(err).NotTo(HaveOccurred())
		r, err := getRole(b.Status.RoleName)
		Expect(err).NotTo(HaveOccurred())
		Expect(aws.ToString(r.Arn)).To(Equal(b.Status.RoleArn))
		// A later reconcile (there may be several around deletion) must not undo this.
		Consistently(annotation(ns, "keeper", "eks.amazonaws.com/role-arn"), 2*time.Second, interval).Should(Equal(b.Status.RoleArn))
		Expect(inlinePolicyNames(b.Status.RoleName)).To(Equal([]string{"podidentity-permissions"}))
		sa, err := serviceAccount(ns, "keeper")
		Expect(err).NotTo(HaveOccurred())
		Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", b.Status.RoleArn))
		Expect(sa.OwnerReferences).To(BeEmpty(), "the retained ServiceAccount no longer belongs to the deleted binding")
	})

	It("keeps the finalizer while IAM is unreachable during delete, and finishes when it is back", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "stubborn", "stubborn"))).To(Succeed())
		b := waitReady(ns, "stubborn")
		proxy.SetDown(true)
		DeferCleanup(func() { proxy.SetDown(false) })

		Expect(k8s.Delete(ctx, b)).To(Succeed())
		Eventually(func() string {
			got := &v1alpha1.PodIdentityBinding{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(b), got); err != nil {
				return err.Error()
			}
			for _, c := range got.Status.Conditions {
				if c.Type == v1alpha1.ConditionReady {
					return c.Reason + ": " + c.Message
				}
			}
			return ""
		}, timeout, interval).Should(And(HavePrefix("DeleteFailed"), ContainSubstring("ServiceUnavailable")))
		Consistently(func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(b), &v1alpha1.PodIdentityBinding{}) }, 3*time.Second, interval).Should(Succeed())
		Expect(getBinding(ns, "stubborn").Finalizers).To(ContainElement("iam.podidentity.io/finalizer"))
		_, err := getRole(b.Status.RoleName)
		Expect(err).NotTo(HaveOccurred(), "nothing is lost while IAM is down")
		Expect(inlinePolicyNames(b.Status.RoleName)).To(Equal([]string{"podidentity-permissions"}))
		Expect(eventReasons(ns, "stubborn")).To(ContainElement("DeleteFailed"))

		proxy.SetDown(false)
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(b), &v1alpha1.PodIdentityBinding{}))
		}, 60*time.Second, interval).Should(BeTrue())
		Expect(roleGone(b.Status.RoleName)()).To(BeTrue())
	})

	It("fails closed on a managed policy it cannot read, without hot-looping", func() {
		By("admission denies it; past a bypassed webhook the reconciler fails closed")
		b := newBinding(ns, "rejected", "rejected")
		b.Spec.ManagedPolicyArns = []string{"arn:aws:iam::123456789012:policy/does-not-exist"}
		err := k8s.Create(ctx, b)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("cannot be read"))
		ns := newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true"})
		b = newBinding(ns, "rejected", "rejected")
		b.Spec.ManagedPolicyArns = []string{"arn:aws:iam::123456789012:policy/does-not-exist"}
		Expect(k8s.Create(ctx, b)).To(Succeed())
		Eventually(readyReason(ns, "rejected"), timeout, interval).Should(Equal("GuardrailViolation"))
		Expect(condition(ns, "rejected", v1alpha1.ConditionReady).Message).To(ContainSubstring("does-not-exist"))
		Expect(condition(ns, "rejected", v1alpha1.ConditionReady).Message).To(ContainSubstring("cannot be read"))
		Expect(roleGone(roleNameFor(ns, "rejected"))()).To(BeTrue(), "a new binding that fails closed gets no role")

		By("retrying only at the sync period, not through the fast back-off")
		attempts := iamCalls("GetPolicy")
		// A hot loop through the rate limiter (5ms, 10ms, 20ms, ...) would
		// make about ten attempts in this time.
		Consistently(func() float64 { return iamCalls("GetPolicy") - attempts }, syncPeriod*3/2, interval).Should(BeNumerically("<=", 2))

		By("fixing the spec makes it Ready")
		b = getBinding(ns, "rejected")
		b.Spec.ManagedPolicyArns = nil
		Expect(k8s.Update(ctx, b)).To(Succeed())
		waitReady(ns, "rejected")
		deleteBinding(ns, "rejected")
	})

	It("rejects invalid specs at admission", func() {
		bad := newBinding(ns, "bad", "bad")
		bad.Spec.Permissions[0].Actions = []string{"not an action"}
		err := k8s.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.permissions[0].actions[0]"))

		bad = newBinding(ns, "bad", "bad")
		bad.Spec.Tags = map[string]string{"podidentity.io/cluster": "other"}
		err = k8s.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("reserved for ownership tags"))

		bad = newBinding(ns, "bad", "bad")
		bad.Spec.MaxSessionDuration = aws.Int32(60)
		Expect(k8s.Create(ctx, bad)).NotTo(Succeed())
	})

	It("re-checks what admission checks when the webhook was bypassed, and reports InvalidSpec", func() {
		ns := newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true"})
		b := newBinding(ns, "dupsid", "dupsid")
		b.Spec.Permissions = append(b.Spec.Permissions, b.Spec.Permissions[0])
		b.Spec.Permissions[0].Sid = "Same"
		b.Spec.Permissions[1].Sid = "Same"
		Expect(k8s.Create(ctx, b)).To(Succeed())
		Eventually(readyReason(ns, "dupsid"), timeout, interval).Should(Equal("InvalidSpec"))
		Expect(condition(ns, "dupsid", v1alpha1.ConditionReady).Message).To(ContainSubstring(`"Same" is used twice`))
		Expect(roleGone(roleNameFor(ns, "dupsid"))()).To(BeTrue(), "nothing reaches IAM")
		deleteBinding(ns, "dupsid")
	})
})
