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

// claims are what STS compares with a trust policy's conditions.
type claims struct{ iss, sub, aud string }

// matchingStatements evaluates a trust policy the way STS does for
// AssumeRoleWithWebIdentity (moto does not): a statement matches a token
// when it allows the action for the provider of the token's issuer and every
// StringEquals condition on that issuer's keys holds.
func matchingStatements(trust map[string]any, tok claims, providerOf func(iss string) string) int {
	id := strings.TrimPrefix(tok.iss, "https://")
	n := 0
	for _, s := range trust["Statement"].([]any) {
		st := s.(map[string]any)
		if st["Effect"] != "Allow" {
			continue
		}
		fed := st["Principal"].(map[string]any)["Federated"].([]any)
		if len(fed) != 1 || fed[0] != providerOf(tok.iss) {
			continue
		}
		conds, _ := st["Condition"].(map[string]any)
		if len(conds) != 1 || conds["StringEquals"] == nil {
			continue // only the exact form the operator writes is accepted here
		}
		eq := conds["StringEquals"].(map[string]any)
		want := map[string]string{id + ":sub": tok.sub, id + ":aud": tok.aud}
		ok := len(eq) == len(want)
		for k, v := range want {
			vals, _ := eq[k].([]any)
			ok = ok && len(vals) == 1 && vals[0] == v
		}
		if ok {
			n++
		}
	}
	return n
}

var _ = Describe("One role trusted by several clusters' issuers", Ordered, func() {
	var (
		others    = []string{"https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF", "https://sts.windows.net/00000000-aaaa-bbbb-cccc-000000000000/"}
		providers = map[string]string{}
	)
	BeforeAll(func() {
		providers[issuerURL] = providerARN
		for _, iss := range others {
			arn, err := testenv.RegisterOIDCProvider(ctx, iamc, iss)
			Expect(err).NotTo(HaveOccurred())
			providers[iss] = arn
		}
		saved := operatorOpts
		operatorOpts.AdditionalOIDCIssuers = others
		// Ordinary bindings fit three statements; a very long
		// ServiceAccount name does not.
		operatorOpts.TrustPolicySizeLimit = 1200
		restartOperator()
		DeferCleanup(func() {
			operatorOpts = saved
			restartOperator()
			for _, iss := range others {
				_, err := iamc.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(providers[iss])})
				Expect(err).NotTo(HaveOccurred())
			}
		})
	})

	It("writes one exact statement per issuer, and a token of each issuer satisfies exactly one", func() {
		ns := newNamespace()
		Expect(k8s.Create(ctx, newBinding(ns, "shared", "shared"))).To(Succeed())
		b := waitReady(ns, "shared")
		trust := trustOf(b.Status.RoleName)
		stmts := trust["Statement"].([]any)
		Expect(stmts).To(HaveLen(3))
		for i, iss := range append([]string{issuerURL}, others...) {
			st := stmts[i].(map[string]any)
			id := strings.TrimPrefix(iss, "https://")
			Expect(st["Principal"]).To(Equal(map[string]any{"Federated": []any{providers[iss]}}))
			Expect(st["Condition"]).To(Equal(map[string]any{"StringEquals": map[string]any{
				id + ":sub": []any{"system:serviceaccount:" + ns + ":shared"},
				id + ":aud": []any{"sts.amazonaws.com"},
			}}))
		}
		providerOf := func(iss string) string { return providers[iss] }
		for _, iss := range append([]string{issuerURL}, others...) {
			Expect(matchingStatements(trust, claims{iss, "system:serviceaccount:" + ns + ":shared", "sts.amazonaws.com"}, providerOf)).To(Equal(1), iss)
			Expect(matchingStatements(trust, claims{iss, "system:serviceaccount:" + ns + ":other", "sts.amazonaws.com"}, providerOf)).To(Equal(0), iss)
			Expect(matchingStatements(trust, claims{iss, "system:serviceaccount:" + ns + ":shared", "vault"}, providerOf)).To(Equal(0), iss)
		}
		Expect(matchingStatements(trust, claims{"https://unknown.example/", "system:serviceaccount:" + ns + ":shared", "sts.amazonaws.com"}, providerOf)).To(Equal(0))
		deleteBinding(ns, "shared")
	})

	It("a binding whose trust would not fit the quota is refused with the sizes, before any IAM call", func() {
		long := strings.Repeat("a", 200)
		ns := newNamespace()
		err := k8s.Create(ctx, newBinding(ns, "long", long))
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("over IAM's limit of 1200 with 3 issuers"))

		bypass := newNamespaceWithLabels(map[string]string{bypassWebhookLabel: "true"})
		Expect(k8s.Create(ctx, newBinding(bypass, "long", long))).To(Succeed())
		Eventually(readyReason(bypass, "long"), timeout, interval).Should(Equal(v1alpha1.ReasonInvalidSpec))
		msg := condition(bypass, "long", v1alpha1.ConditionReady).Message
		Expect(msg).To(MatchRegexp(`the trust policy would be \d+ characters, over IAM's limit of 1200 with 3 issuers .*; [12] fit`))
		Expect(roleGone(roleNameFor(bypass, "long"))()).To(BeTrue())
		deleteBinding(bypass, "long")
	})
})
