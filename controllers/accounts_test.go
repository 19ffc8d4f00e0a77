package controllers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// iamIn is an IAM client acting in another account of moto: credentials
// from sts:AssumeRole on a role of that account, straight to moto (never
// through the operator's code or the proxy).
func iamIn(account string) *iam.Client {
	GinkgoHelper()
	out, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + account + ":role/test-admin"),
		RoleSessionName: aws.String("test")})
	Expect(err).NotTo(HaveOccurred())
	c := out.Credentials
	creds := credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	return iam.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: creds}, func(o *iam.Options) { o.BaseEndpoint = aws.String(moto.URL) })
}

// roleIn reads a role of another account (nil: none).
func roleIn(c *iam.Client, name string) *iam.GetRoleOutput {
	GinkgoHelper()
	out, err := c.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if err != nil {
		Expect(err.Error()).To(ContainSubstring("NoSuchEntity"))
		return nil
	}
	return out
}

// trustedProviders are the Federated principals of a role's trust policy.
func trustedProviders(out *iam.GetRoleOutput) []string {
	GinkgoHelper()
	raw, err := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	Expect(err).NotTo(HaveOccurred())
	var doc struct {
		Statement []struct {
			Principal struct{ Federated any }
		}
	}
	Expect(json.Unmarshal([]byte(raw), &doc)).To(Succeed())
	Expect(doc.Statement).NotTo(BeEmpty())
	var out2 []string
	for _, st := range doc.Statement {
		switch f := st.Principal.Federated.(type) {
		case string:
			out2 = append(out2, f)
		case []any:
			for _, v := range f {
				out2 = append(out2, v.(string))
			}
		}
	}
	return out2
}

func newAccount(name, account string, selector map[string]string, mutate ...func(*v1alpha1.PodIdentityAccount)) *v1alpha1.PodIdentityAccount {
	a := &v1alpha1.PodIdentityAccount{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.PodIdentityAccountSpec{AccountID: account, RoleARN: "arn:aws:iam::" + account + ":role/podidentity-operator",
			ExternalID: "cluster-" + clusterName, NamespaceSelector: metav1.LabelSelector{MatchLabels: selector}}}
	for _, m := range mutate {
		m(a)
	}
	Expect(k8s.Create(ctx, a)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, a))).To(Succeed()) })
	return a
}

func accountReady(name string) func() string {
	return func() string {
		a := &v1alpha1.PodIdentityAccount{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, a); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
}

func relabel(ns string, labels map[string]string) {
	GinkgoHelper()
	n := &corev1.Namespace{}
	Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, n)).To(Succeed())
	n.Labels = labels
	Expect(k8s.Update(ctx, n)).To(Succeed())
}

var _ = Describe("Many AWS accounts (issue 20)", Ordered, func() {
	const (
		accountB = "222222222222"
		accountC = "333333333333"
	)
	var iamB, iamC *iam.Client

	// podIdentityInB is a namespace a new PodIdentityAccount of B selects,
	// and its EKS Pod Identity binding app, Ready with its role in B.
	podIdentityInB := func() (string, *v1alpha1.PodIdentityBinding) {
		GinkgoHelper()
		key := "accounts-" + newNamespace()
		newAccount(key+"-b", accountB, map[string]string{"team": key})
		Eventually(accountReady(key+"-b"), timeout, interval).Should(Equal("True/Assumed"))
		ns := newNamespaceWithLabels(map[string]string{"team": key})
		Expect(k8s.Create(ctx, podIdentityBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")
		Expect(b.Status.Account).To(Equal(accountB))
		return ns, b
	}

	BeforeAll(func() {
		iamB, iamC = iamIn(accountB), iamIn(accountC)
		// The cluster's issuer is registered in each account, as the
		// README's setup does.
		for _, c := range []*iam.Client{iamB, iamC} {
			_, err := testenv.RegisterOIDCProvider(ctx, c, issuerURL)
			Expect(err).NotTo(HaveOccurred())
		}
	})

	It("creates a namespace's roles in the account that selects it, and moves them when the namespace moves", func() {
		key := "accounts-" + newNamespace()
		newAccount(key+"-b", accountB, map[string]string{"team": key + "-b"})
		Eventually(accountReady(key+"-b"), timeout, interval).Should(Equal("True/Assumed"))
		ns := newNamespaceWithLabels(map[string]string{"team": key + "-b"})
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")

		By("the role is in account B, trusts B's OIDC provider, and the ServiceAccount names it")
		Expect(b.Status.Account).To(Equal(accountB))
		Expect(b.Status.RoleArn).To(HavePrefix("arn:aws:iam::" + accountB + ":role/"))
		inB := roleIn(iamB, b.Status.RoleName)
		Expect(inB).NotTo(BeNil())
		Expect(aws.ToString(inB.Role.Arn)).To(Equal(b.Status.RoleArn))
		Expect(trustedProviders(inB)).To(HaveEach(HavePrefix("arn:aws:iam::" + accountB + ":oidc-provider/")))
		Expect(annotation(ns, "app", "eks.amazonaws.com/role-arn")()).To(Equal(b.Status.RoleArn))
		_, err := getRole(b.Status.RoleName)
		Expect(err).To(HaveOccurred(), "no role of the namespace in the operator's own account")
		Expect(metricSum("podidentity_iam_api_calls_total", func(m *dto.Metric) bool {
			return labelValue(m, "account") == accountB && labelValue(m, "operation") == "CreateRole"
		})).To(BeNumerically(">", 0), "IAM calls are counted under the account they act in")

		By("the namespace leaves account B: the role moves to the operator's account and B's is deleted")
		relabel(ns, map[string]string{"team": key + "-none"})
		Eventually(func() string { return getBinding(ns, "app").Status.RoleArn }, timeout, interval).
			Should(HavePrefix("arn:aws:iam::" + testenv.Account + ":role/"))
		b = waitReady(ns, "app")
		Expect(b.Status.Account).To(BeEmpty())
		Eventually(annotation(ns, "app", "eks.amazonaws.com/role-arn"), timeout, interval).Should(Equal(b.Status.RoleArn))
		Eventually(func() *iam.GetRoleOutput { return roleIn(iamB, b.Status.RoleName) }, timeout, interval).Should(BeNil())
		Eventually(func() []v1alpha1.RoleReference { return getBinding(ns, "app").Status.OwnedRoles }, timeout, interval).
			Should(ConsistOf(v1alpha1.RoleReference{Name: b.Status.RoleName, ID: b.Status.RoleID}))

		By("and back: the operator's own role goes once B's serves the ServiceAccount")
		relabel(ns, map[string]string{"team": key + "-b"})
		Eventually(func() string { return getBinding(ns, "app").Status.Account }, timeout, interval).Should(Equal(accountB))
		b = waitReady(ns, "app")
		Eventually(roleGone(b.Status.RoleName), timeout, interval).Should(BeTrue())
		Expect(roleIn(iamB, b.Status.RoleName)).NotTo(BeNil())
		Eventually(func() []v1alpha1.RoleReference { return getBinding(ns, "app").Status.OwnedRoles }, timeout, interval).
			Should(ConsistOf(v1alpha1.RoleReference{Name: b.Status.RoleName, Account: accountB, ID: b.Status.RoleID}))

		deleteBinding(ns, "app")
		Expect(roleIn(iamB, b.Status.RoleName)).To(BeNil(), "deleting the binding deletes its role in account B")
	})

	It("moves a binding of the operator's account into an account created for its namespace", func() {
		key := "accounts-" + newNamespace()
		ns := newNamespaceWithLabels(map[string]string{"team": key})
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		home := waitReady(ns, "app")
		Expect(home.Status.Account).To(BeEmpty())
		newAccount(key+"-b", accountB, map[string]string{"team": key})
		Eventually(func() string { return getBinding(ns, "app").Status.Account }, timeout, interval).Should(Equal(accountB))
		b := waitReady(ns, "app")
		Eventually(roleGone(home.Status.RoleName), timeout, interval).Should(BeTrue())
		Eventually(func() []v1alpha1.RoleReference { return getBinding(ns, "app").Status.OwnedRoles }, timeout, interval).
			Should(ConsistOf(v1alpha1.RoleReference{Name: b.Status.RoleName, Account: accountB, ID: b.Status.RoleID}), func() string {
				var out []string
				for _, mf := range getBinding(ns, "app").ManagedFields {
					out = append(out, mf.Manager+" "+mf.Subresource+" "+string(mf.FieldsV1.Raw))
				}
				return strings.Join(out, "\n")
			})
		Expect(annotation(ns, "app", "eks.amazonaws.com/role-arn")()).To(Equal(b.Status.RoleArn))
		deleteBinding(ns, "app")
		Expect(roleIn(iamB, b.Status.RoleName)).To(BeNil())
	})

	It("sweeps each account once per period, corrects drift there, and acts in each account only with its own credentials", func() {
		key := "accounts-" + newNamespace()
		newAccount(key+"-b", accountB, map[string]string{"team": key + "-b"})
		newAccount(key+"-c", accountC, map[string]string{"team": key + "-c"})
		Eventually(accountReady(key+"-b"), timeout, interval).Should(Equal("True/Assumed"))
		Eventually(accountReady(key+"-c"), timeout, interval).Should(Equal("True/Assumed"))
		nsB := newNamespaceWithLabels(map[string]string{"team": key + "-b"})
		nsC := newNamespaceWithLabels(map[string]string{"team": key + "-c"})
		nsH := newNamespace()
		for _, ns := range []string{nsB, nsC, nsH} {
			Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		}
		bB, bC, bH := waitReady(nsB, "app"), waitReady(nsC, "app"), waitReady(nsH, "app")
		Expect([]string{bB.Status.Account, bC.Status.Account, bH.Status.Account}).To(Equal([]string{accountB, accountC, ""}))

		By("idle: each account is swept every period and no role is read one by one (counted at the proxy, by the credentials' account)")
		readsB, readsC := proxy.CallsIn(accountB, "", bB.Status.RoleName), proxy.CallsIn(accountC, "", bC.Status.RoleName)
		sweepsB := proxy.CallsIn(accountB, "GetAccountAuthorizationDetails", "")
		sweepsC := proxy.CallsIn(accountC, "GetAccountAuthorizationDetails", "")
		Eventually(func() bool {
			// Three sweeps each: a binding re-read every period would have
			// been read three times meanwhile.
			return proxy.CallsIn(accountB, "GetAccountAuthorizationDetails", "") >= sweepsB+3 &&
				proxy.CallsIn(accountC, "GetAccountAuthorizationDetails", "") >= sweepsC+3
		}, 6*syncPeriod, interval).Should(BeTrue())
		Expect(proxy.CallsIn(accountB, "", bB.Status.RoleName)).To(Equal(readsB), "B's role was read one by one while idle")
		Expect(proxy.CallsIn(accountC, "", bC.Status.RoleName)).To(Equal(readsC), "C's role was read one by one while idle")

		By("drift in B and in C: the sweep of each account finds it and the operator corrects it there")
		for _, c := range []struct {
			iam  *iam.Client
			role string
		}{{iamB, bB.Status.RoleName}, {iamC, bC.Status.RoleName}} {
			_, err := c.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(c.role), PolicyName: aws.String("podidentity-permissions"),
				PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)})
			Expect(err).NotTo(HaveOccurred())
		}
		for _, c := range []struct {
			iam      *iam.Client
			ns, role string
		}{{iamB, nsB, bB.Status.RoleName}, {iamC, nsC, bC.Status.RoleName}} {
			Eventually(func() any {
				pol, err := c.iam.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(c.role), PolicyName: aws.String("podidentity-permissions")})
				Expect(err).NotTo(HaveOccurred())
				return decoded(pol.PolicyDocument)["Statement"].([]any)[0].(map[string]any)["Action"]
			}, timeout, interval).Should(Equal([]any{"dynamodb:GetItem", "dynamodb:Query"}))
			Eventually(func() string { return eventNotes(c.ns, "app", "DriftCorrected") }, timeout, interval).Should(ContainSubstring("InlinePolicy"))
		}
		Expect(metricSum("podidentity_drift_corrections_total", func(m *dto.Metric) bool {
			return labelValue(m, "account") == accountC && labelValue(m, "kind") == "InlinePolicy"
		})).To(BeNumerically(">", 0), "drift is counted under the account it was found in")

		By("each account's credentials named only the roles of the namespaces it serves")
		Expect(proxy.RolesNamedIn(accountB)).To(And(HaveKey(bB.Status.RoleName), Not(HaveKey(bC.Status.RoleName)), Not(HaveKey(bH.Status.RoleName))))
		Expect(proxy.RolesNamedIn(accountC)).To(And(HaveKey(bC.Status.RoleName), Not(HaveKey(bB.Status.RoleName)), Not(HaveKey(bH.Status.RoleName))))
		Expect(proxy.RolesNamedIn("")).To(And(HaveKey(bH.Status.RoleName), Not(HaveKey(bB.Status.RoleName)), Not(HaveKey(bC.Status.RoleName))))
		for _, ns := range []string{nsB, nsC, nsH} {
			deleteBinding(ns, "app")
		}
	})

	It("trusts an account's own additional issuers there, and reports an account spec it cannot use", func() {
		key := "accounts-" + newNamespace()
		oldIssuer := "https://" + key + ".old-cluster.example.com/id/ABC"
		oldProvider, err := testenv.RegisterOIDCProvider(ctx, iamC, oldIssuer)
		Expect(err).NotTo(HaveOccurred())
		newAccount(key+"-c", accountC, map[string]string{"team": key}, func(a *v1alpha1.PodIdentityAccount) {
			a.Spec.AdditionalOIDCIssuers = []string{oldIssuer}
			a.Spec.IAMRateLimits = &v1alpha1.IAMRateLimits{WriteQPS: 5, WriteBurst: 5}
		})
		Eventually(accountReady(key+"-c"), timeout, interval).Should(Equal("True/Assumed"))
		ns := newNamespaceWithLabels(map[string]string{"team": key})
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")
		Expect(b.Status.Account).To(Equal(accountC))
		Expect(trustedProviders(roleIn(iamC, b.Status.RoleName))).To(ConsistOf(
			strings.Replace(providerARN, ":"+testenv.Account+":", ":"+accountC+":", 1), oldProvider))
		deleteBinding(ns, "app")

		By("an additional issuer that is the cluster's own is refused with a reason, not guessed at")
		newAccount(key+"-bad", accountB, map[string]string{"team": key + "-bad"}, func(a *v1alpha1.PodIdentityAccount) {
			a.Spec.AdditionalOIDCIssuers = []string{issuerURL}
		})
		Eventually(accountReady(key+"-bad"), timeout, interval).Should(Equal("False/" + v1alpha1.ReasonInvalidSpec))
		Expect(func() string {
			a := &v1alpha1.PodIdentityAccount{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: key + "-bad"}, a)).To(Succeed())
			return meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady).Message
		}()).To(ContainSubstring("cluster's own issuer"))

		By("the API server refuses what the CRD can judge alone")
		bad := &v1alpha1.PodIdentityAccount{ObjectMeta: metav1.ObjectMeta{Name: key + "-plain"},
			Spec: v1alpha1.PodIdentityAccountSpec{AccountID: accountB, RoleARN: "arn:aws:iam::" + accountB + ":role/op",
				AdditionalOIDCIssuers: []string{"http://plain.example.com"}, IAMRateLimits: &v1alpha1.IAMRateLimits{ReadQPS: -1}}}
		err = k8s.Create(ctx, bad)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(And(ContainSubstring("additionalOidcIssuers"), ContainSubstring("readQPS")))
	})

	It("binds EKS Pod Identity across accounts: a hop role in the cluster's account, the target role in the namespace's, exact trust at both", func() {
		ns, b := podIdentityInB()
		Expect(b.Status.Identity).To(Equal(v1alpha1.IdentityEKSPodIdentity))

		By("the association maps the ServiceAccount to the hop role, with B's role as its target (read through the EKS API)")
		a := association(ns, "app")
		Expect(a).NotTo(BeNil())
		Expect(aws.ToString(a.TargetRoleArn)).To(Equal(b.Status.RoleArn))
		hopARN := aws.ToString(a.RoleArn)
		Expect(hopARN).To(HavePrefix("arn:aws:iam::" + testenv.Account + ":role" + rolePath))
		hopName := hopARN[strings.LastIndex(hopARN, "/")+1:]
		Expect(hopName).To(Equal(clusterName+"_"+ns+"_app_hop"), "the name the README documents (<prefix><cluster>_<namespace>_<binding>_hop; no prefix here)")
		Expect(aws.ToString(a.ExternalId)).NotTo(BeEmpty())
		Expect(b.Status.OwnedRoles).To(ConsistOf(
			v1alpha1.RoleReference{Name: b.Status.RoleName, Account: accountB, ID: b.Status.RoleID},
			HaveField("Name", hopName)))

		By("the hop role trusts EKS for this ServiceAccount only and may only assume the target")
		hopTrust := trustOf(hopName)
		st := hopTrust["Statement"].([]any)[0].(map[string]any)
		Expect(testenv.StringOrList(st["Principal"].(map[string]any)["Service"])).To(Equal([]string{"pods.eks.amazonaws.com"}))
		Expect(st["Condition"].(map[string]any)["StringEquals"]).To(HaveKeyWithValue("aws:RequestTag/kubernetes-service-account", []any{"app"}))
		Expect(inlinePolicyNames(hopName)).To(Equal([]string{"podidentity-permissions"}))
		pol, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(hopName), PolicyName: aws.String("podidentity-permissions")})
		Expect(err).NotTo(HaveOccurred())
		hopStmt := decoded(pol.PolicyDocument)["Statement"].([]any)[0].(map[string]any)
		Expect(testenv.StringOrList(hopStmt["Action"])).To(ConsistOf("sts:AssumeRole", "sts:TagSession"))
		Expect(testenv.StringOrList(hopStmt["Resource"])).To(Equal([]string{b.Status.RoleArn}))
		Expect(attachedPolicies(hopName)).To(BeEmpty())

		By("the target role in B trusts only the hop role, with the association's external ID")
		target := roleIn(iamB, b.Status.RoleName)
		Expect(target).NotTo(BeNil())
		doc := aws.ToString(target.Role.AssumeRolePolicyDocument)
		Expect(testenv.TrustAllows(doc, testenv.TrustRequest{PrincipalType: "AWS", Principal: hopARN, Actions: []string{"sts:AssumeRole"},
			Context: map[string]string{"sts:ExternalId": aws.ToString(a.ExternalId)}})).To(BeTrue())
		for _, wrong := range []testenv.TrustRequest{
			{PrincipalType: "AWS", Principal: hopARN, Actions: []string{"sts:AssumeRole"}, Context: map[string]string{"sts:ExternalId": "guess"}},
			{PrincipalType: "AWS", Principal: "arn:aws:iam::" + testenv.Account + ":role/other", Actions: []string{"sts:AssumeRole"},
				Context: map[string]string{"sts:ExternalId": aws.ToString(a.ExternalId)}},
			{PrincipalType: "Service", Principal: "pods.eks.amazonaws.com", Actions: []string{"sts:AssumeRole"}, Context: map[string]string{}},
		} {
			Expect(testenv.TrustAllows(doc, wrong)).To(BeFalse(), "%+v", wrong)
		}

		By("a token of the ServiceAccount becomes credentials of the target role in B; another ServiceAccount's is refused")
		status, assumed := podIdentityCredentials(ns, "app")
		Expect(status).To(Equal(http.StatusOK))
		Expect(assumed).To(HavePrefix("arn:aws:sts::" + accountB + ":assumed-role/" + b.Status.RoleName + "/"))
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "intruder"}})).To(Succeed())
		_, err = eksc.CreatePodIdentityAssociation(ctx, &eks.CreatePodIdentityAssociationInput{ClusterName: aws.String(clusterName),
			Namespace: aws.String(ns), ServiceAccount: aws.String("intruder"), RoleArn: aws.String(hopARN), TargetRoleArn: aws.String(b.Status.RoleArn)})
		Expect(err).NotTo(HaveOccurred())
		status, _ = podIdentityCredentials(ns, "intruder")
		Expect(status).To(Equal(http.StatusForbidden))

		By("the association's target changed out of band: corrected, and its external ID still opens the target")
		_, err = eksc.UpdatePodIdentityAssociation(ctx, &eks.UpdatePodIdentityAssociationInput{ClusterName: aws.String(clusterName),
			AssociationId: a.AssociationId, TargetRoleArn: aws.String("arn:aws:iam::" + accountB + ":role/elsewhere")})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() string { return aws.ToString(association(ns, "app").TargetRoleArn) }, timeout, interval).Should(Equal(b.Status.RoleArn))
		Eventually(func() int { s, _ := podIdentityCredentials(ns, "app"); return s }, timeout, interval).Should(Equal(http.StatusOK))

		By("deleting the binding deletes the association, the hop role and the target role")
		deleteBinding(ns, "app")
		Expect(association(ns, "app")).To(BeNil())
		Expect(roleGone(hopName)()).To(BeTrue())
		Expect(roleIn(iamB, b.Status.RoleName)).To(BeNil())
	})

	It("keeps a chained binding on its role in the other account when the name it would move to is taken, trusted through the hop only", func() {
		// Found by the invariant sequence (seed 2246110281): the role in B
		// was rendered for the cluster's account, so it trusted the
		// ServiceAccount through EKS directly while the hop still did (I2).
		ns, b := podIdentityInB()
		hopARN := aws.ToString(association(ns, "app").RoleArn)
		hopName := hopARN[strings.LastIndex(hopARN, "/")+1:]

		By("another team's role holds the binding's role name in the cluster's account; the namespace leaves B")
		createForeignRole(b.Status.RoleName)
		DeferCleanup(func() { _, _ = iamc.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(b.Status.RoleName)}) })
		relabel(ns, map[string]string{})
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal(v1alpha1.ReasonRoleConflict))

		By("the binding keeps serving from B through the hop, and nothing in B trusts the ServiceAccount directly")
		onlyTheHop := func(g Gomega) {
			target := roleIn(iamB, b.Status.RoleName)
			g.Expect(target).NotTo(BeNil())
			doc := aws.ToString(target.Role.AssumeRolePolicyDocument)
			externalID := aws.ToString(association(ns, "app").ExternalId)
			g.Expect(testenv.TrustAllows(doc, testenv.TrustRequest{PrincipalType: "AWS", Principal: hopARN, Actions: []string{"sts:AssumeRole"},
				Context: map[string]string{"sts:ExternalId": externalID}})).To(BeTrue(), "B's role trusts the hop: %s", doc)
			g.Expect(testenv.TrustAllows(doc, testenv.TrustRequest{PrincipalType: "Service", Principal: "pods.eks.amazonaws.com",
				Actions: []string{"sts:AssumeRole", "sts:TagSession"}, Context: map[string]string{
					"aws:RequestTag/kubernetes-namespace": ns, "aws:RequestTag/kubernetes-service-account": "app"}})).To(BeFalse(),
				"B's role trusts EKS for the ServiceAccount directly: %s", doc)
			_, err := getRole(hopName)
			g.Expect(err).NotTo(HaveOccurred(), "the hop stays while the chain serves")
			g.Expect(getBinding(ns, "app").Status.Account).To(Equal(accountB))
		}
		Consistently(onlyTheHop, 2*syncPeriod, interval).Should(Succeed())
		status, assumed := podIdentityCredentials(ns, "app")
		Expect(status).To(Equal(http.StatusOK))
		Expect(assumed).To(HavePrefix("arn:aws:sts::" + accountB + ":assumed-role/" + b.Status.RoleName + "/"))

		By("the other role goes: the binding moves to the cluster's account, and B's role and the hop are retired")
		_, err := iamc.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(b.Status.RoleName)})
		Expect(err).NotTo(HaveOccurred())
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal("True"))
		Expect(getBinding(ns, "app").Status.Account).To(BeEmpty())
		Eventually(func() *iam.GetRoleOutput { return roleIn(iamB, b.Status.RoleName) }, timeout, interval).Should(BeNil())
		Eventually(roleGone(hopName), timeout, interval).Should(BeTrue())
		deleteBinding(ns, "app")
	})

	It("accepts the README's PodIdentityAccount as written, which names what its setup creates", func() {
		root, err := testenv.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		raw, err := os.ReadFile(filepath.Join(root, "README.md"))
		Expect(err).NotTo(HaveOccurred())
		readme := string(raw)
		example := testenv.FencedBlock(readme, "yaml", "# PodIdentityAccount: one per target account")
		Expect(example).NotTo(BeEmpty())
		u := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal([]byte(example), &u.Object)).To(Succeed())
		Expect(k8s.Create(ctx, u, client.DryRunAll)).To(Succeed(), "the API server (CRD schema and rules) refuses the README's example")
		a := &v1alpha1.PodIdentityAccount{}
		Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, a)).To(Succeed())
		// The names the setup commands create (e2e runs them with CLUSTER=prod).
		Expect(a.Spec.RoleARN).To(Equal("arn:aws:iam::" + a.Spec.AccountID + ":role/podidentity-operator-prod"))
		Expect(a.Spec.PermissionsBoundaryARN).To(Equal("arn:aws:iam::" + a.Spec.AccountID + ":policy/podidentity-boundary-prod"))
		Expect(readme).To(ContainSubstring("EXTERNAL_ID=" + a.Spec.ExternalID))
		// The label command the README gives selects the namespace.
		for k, v := range a.Spec.NamespaceSelector.MatchLabels {
			Expect(readme).To(ContainSubstring("kubectl label namespace payments " + k + "=" + v))
		}
		// `kubectl get pia`, as the README says.
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		Expect(k8s.Get(ctx, client.ObjectKey{Name: "podidentityaccounts.iam.podidentity.io"}, crd)).To(Succeed())
		shortNames, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "shortNames")
		Expect(shortNames).To(ContainElement("pia"))
		Expect(readme).To(ContainSubstring("`kubectl get pia`"))
	})

	It("reports a namespace two accounts select, and never guesses", func() {
		key := "accounts-" + newNamespace()
		newAccount(key+"-b", accountB, map[string]string{"team": key})
		newAccount(key+"-c", accountC, map[string]string{"team": key})
		ns := newNamespaceWithLabels(map[string]string{"team": key})
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal(v1alpha1.ReasonAccountConflict))
		Expect(condition(ns, "app", v1alpha1.ConditionReady).Message).To(And(ContainSubstring(key+"-b"), ContainSubstring(key+"-c")))
		name := getBinding(ns, "app").Status.RoleName
		Expect(name).To(BeEmpty())
		Eventually(func() []string {
			a := &v1alpha1.PodIdentityAccount{}
			Expect(k8s.Get(ctx, client.ObjectKey{Name: key + "-b"}, a)).To(Succeed())
			return a.Status.ConflictingNamespaces
		}, timeout, interval).Should(ContainElement(ns))
		for _, c := range []*iam.Client{iamB, iamC} {
			roles, err := c.ListRoles(ctx, &iam.ListRolesInput{})
			Expect(err).NotTo(HaveOccurred())
			for _, r := range roles.Roles {
				Expect(aws.ToString(r.RoleName)).NotTo(ContainSubstring(ns), "no role anywhere for a contested namespace")
			}
		}
		deleteBinding(ns, "app")
	})

	It("keeps a binding's roles when its account resource goes, and says why", func() {
		key := "accounts-" + newNamespace()
		acc := newAccount(key+"-b", accountB, map[string]string{"team": key})
		Eventually(accountReady(key+"-b"), timeout, interval).Should(Equal("True/Assumed"))
		ns := newNamespaceWithLabels(map[string]string{"team": key})
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")
		Expect(b.Status.Account).To(Equal(accountB))

		Expect(k8s.Delete(ctx, acc)).To(Succeed())
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal(v1alpha1.ReasonAccountUnavailable))
		Expect(condition(ns, "app", v1alpha1.ConditionReady).Message).To(ContainSubstring(accountB))
		Consistently(func() *iam.GetRoleOutput { return roleIn(iamB, b.Status.RoleName) }, syncPeriod, interval).ShouldNot(BeNil())
		_, err := getRole(b.Status.RoleName)
		Expect(err).To(HaveOccurred(), "no role is created in the operator's account while B's still trusts the ServiceAccount")

		By("the account comes back: the binding converges and deletes cleanly")
		newAccount(key+"-b2", accountB, map[string]string{"team": key})
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal("True"))
		deleteBinding(ns, "app")
		Expect(roleIn(iamB, b.Status.RoleName)).To(BeNil())
	})

	It("reports an account whose role cannot be assumed, and the other accounts keep converging", func() {
		key := "accounts-" + newNamespace()
		// Denied before the account exists: assumed once, its session
		// credentials would stay valid (and cached) whatever the trust says.
		c := newAccount(key+"-c", accountC, map[string]string{"team": key + "-c"}, func(a *v1alpha1.PodIdentityAccount) {
			proxy.DenyAssumeRole(a.Spec.RoleARN)
			DeferCleanup(func() { proxy.DenyAssumeRole() })
		})
		newAccount(key+"-b", accountB, map[string]string{"team": key + "-b"})
		Eventually(accountReady(key+"-c"), timeout, interval).Should(Equal("False/" + v1alpha1.ReasonAssumeRoleFailed))
		nsC := newNamespaceWithLabels(map[string]string{"team": key + "-c"})
		nsB := newNamespaceWithLabels(map[string]string{"team": key + "-b"})
		Expect(k8s.Create(ctx, newBinding(nsC, "app", "app"))).To(Succeed())
		Expect(k8s.Create(ctx, newBinding(nsB, "app", "app"))).To(Succeed())
		Eventually(readyReason(nsC, "app"), timeout, interval).Should(Equal(v1alpha1.ReasonAccountUnavailable))
		Expect(condition(nsC, "app", v1alpha1.ConditionReady).Message).To(ContainSubstring("AccessDenied"))
		b := waitReady(nsB, "app")
		Expect(b.Status.Account).To(Equal(accountB))
		_, err := serviceAccount(nsC, "app")
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "nothing is bound in a namespace whose account is unavailable")

		By("the trust is fixed: the binding converges in its account")
		proxy.DenyAssumeRole()
		// The account is looked at again every sync period; an edit makes it now.
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
		c.Spec.SessionName = "fixed"
		Expect(k8s.Update(ctx, c)).To(Succeed())
		Eventually(readyReason(nsC, "app"), timeout, interval).Should(Equal("True"))
		Expect(strings.HasPrefix(getBinding(nsC, "app").Status.RoleArn, "arn:aws:iam::"+accountC+":role/")).To(BeTrue())
		deleteBinding(nsC, "app")
		deleteBinding(nsB, "app")
	})

	It("keeps acting on an issued session after the trust shuts it out, as AWS does, and an edit assumes afresh", func() {
		key := "accounts-" + newNamespace()
		c := newAccount(key+"-c", accountC, map[string]string{"team": key})
		Eventually(accountReady(key+"-c"), timeout, interval).Should(Equal("True/Assumed"))
		ns := newNamespaceWithLabels(map[string]string{"team": key})
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		Expect(waitReady(ns, "app").Status.Account).To(Equal(accountC))

		By("the role's trust no longer admits the operator: the session it holds is still valid")
		proxy.DenyAssumeRole(c.Spec.RoleARN)
		DeferCleanup(func() { proxy.DenyAssumeRole() })
		Consistently(accountReady(key+"-c"), 2*syncPeriod, interval).Should(Equal("True/Assumed"))

		By("an edit of the PodIdentityAccount assumes the role afresh, and says it cannot")
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
		c.Spec.SessionName = "afresh"
		Expect(k8s.Update(ctx, c)).To(Succeed())
		Eventually(accountReady(key+"-c"), timeout, interval).Should(Equal("False/" + v1alpha1.ReasonAssumeRoleFailed))
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal(v1alpha1.ReasonAccountUnavailable))

		By("the trust admits it again: the binding converges and deletes cleanly")
		proxy.DenyAssumeRole()
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
		c.Spec.SessionName = "admitted"
		Expect(k8s.Update(ctx, c)).To(Succeed())
		Eventually(readyReason(ns, "app"), timeout, interval).Should(Equal("True"))
		name := getBinding(ns, "app").Status.RoleName
		deleteBinding(ns, "app")
		Expect(roleIn(iamC, name)).To(BeNil())
	})
})
