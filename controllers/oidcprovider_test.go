package controllers_test

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

var _ = Describe("The cluster's OIDC identity provider", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	// conditionStatus reads one condition's status and reason.
	conditionStatus := func(name, condType string) func() string {
		return func() string {
			c := condition(ns, name, condType)
			if c == nil {
				return ""
			}
			return string(c.Status) + "/" + c.Reason
		}
	}
	// registerProvider (re)creates the provider with these client IDs (moto
	// answers AddClientIDToOpenIDConnectProvider with a 500).
	registerProvider := func(audiences ...string) {
		_, _ = iamc.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(providerARN)})
		arn, err := testenv.RegisterOIDCProvider(ctx, iamc, issuerURL, audiences...)
		Expect(err).NotTo(HaveOccurred())
		Expect(arn).To(Equal(providerARN))
	}

	It("is registered under the issuer exactly as tokens carry it, trailing slash included", func() {
		Expect(issuerURL).To(HaveSuffix("/"), "envtest's issuer ends in a slash; this spec relies on it")
		out, err := iamc.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(providerARN)})
		Expect(err).NotTo(HaveOccurred())
		Expect("https://" + aws.ToString(out.Url)).To(Equal(issuerURL))

		Expect(k8s.Create(ctx, newBinding(ns, "exact", "exact"))).To(Succeed())
		b := waitReady(ns, "exact")
		st := trustOf(b.Status.RoleName)["Statement"].([]any)[0].(map[string]any)
		Expect(st["Principal"]).To(Equal(map[string]any{"Federated": []any{providerARN}}))
		Expect(providerARN).To(HaveSuffix(":oidc-provider/" + strings.TrimPrefix(issuerURL, "https://")))
		Expect(st["Condition"].(map[string]any)["StringEquals"]).To(HaveKey(strings.TrimPrefix(issuerURL, "https://") + ":sub"))
		deleteBinding(ns, "exact")
	})

	It("a binding is Ready only while the provider exists and lists its audience", func() {
		// Put the provider back as the suite registered it.
		DeferCleanup(func() { registerProvider("sts.amazonaws.com") })

		By("a custom audience the provider does not list")
		b := newBinding(ns, "vault", "vault")
		b.Spec.ServiceAccountToken = &v1alpha1.ServiceAccountTokenSettings{Audience: "vault"}
		Expect(k8s.Create(ctx, b)).To(Succeed())
		Eventually(readyReason(ns, "vault"), timeout, interval).Should(Equal(v1alpha1.ReasonAudienceNotRegistered))
		Expect(condition(ns, "vault", v1alpha1.ConditionReady).Message).To(ContainSubstring(`audience vault`))
		Expect(conditionStatus("vault", v1alpha1.ConditionRoleSynced)()).To(Equal("True/Synced"), "the role itself is applied")
		Expect(conditionStatus("vault", v1alpha1.ConditionServiceAccountSynced)()).To(Equal("True/Synced"))
		Expect(eventReasons(ns, "vault")).To(ContainElement(v1alpha1.ReasonAudienceNotRegistered))
		Expect(getBinding(ns, "vault").Status.RoleArn).NotTo(BeEmpty())

		By("registering the audience makes it Ready within a sync period, without a spec change")
		registerProvider("sts.amazonaws.com", "vault")
		Eventually(readyReason(ns, "vault"), 2*syncPeriod+timeout/2, interval).Should(Equal("True"))

		By("the provider deleted from IAM")
		_, err := iamc.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(providerARN)})
		Expect(err).NotTo(HaveOccurred())
		Eventually(readyReason(ns, "vault"), 2*syncPeriod+timeout/2, interval).Should(Equal(v1alpha1.ReasonOIDCProviderMissing))
		msg := condition(ns, "vault", v1alpha1.ConditionReady).Message
		Expect(msg).To(ContainSubstring(providerARN))
		Expect(msg).To(ContainSubstring("https://" + strings.TrimPrefix(issuerURL, "https://")))
		Expect(conditionStatus("vault", v1alpha1.ConditionRoleSynced)()).To(Equal("True/Synced"))

		By("registering it again with both audiences")
		registerProvider("vault", "sts.amazonaws.com")
		Eventually(readyReason(ns, "vault"), 2*syncPeriod+timeout/2, interval).Should(Equal("True"))
		Expect(condition(ns, "vault", v1alpha1.ConditionReady).ObservedGeneration).To(Equal(getBinding(ns, "vault").Generation))
		deleteBinding(ns, "vault")
	})
})
