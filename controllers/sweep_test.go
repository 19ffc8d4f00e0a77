package controllers_test

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/podidentity/podidentity-operator/internal/role"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

var perRoleReads = []string{"GetRole", "ListRolePolicies", "GetRolePolicy", "ListAttachedRolePolicies"}

// roleCalls counts the proxied IAM requests that name the role, by action.
func roleCalls(name string, actions ...string) int {
	n := 0
	for _, a := range actions {
		n += proxy.Calls(a, name)
	}
	return n
}

var _ = Describe("Drift sweep", func() {
	It("reads what Observe reads, for every role, in a few paginated calls", func() {
		ns := newNamespace()
		for i := range 4 {
			b := newBinding(ns, fmt.Sprintf("app-%d", i), fmt.Sprintf("app-%d", i))
			b.Spec.ManagedPolicyArns = []string{"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}
			b.Spec.Description = "sweep test"
			Expect(k8s.Create(ctx, b)).To(Succeed())
		}
		for i := range 4 {
			waitReady(ns, fmt.Sprintf("app-%d", i))
		}
		// Through a pager of 2 roles per page, as IAM pages at 1,000.
		snap, err := role.Snapshot(ctx, &testenv.PagedIAM{API: iamc, PageSize: 2}, rolePath)
		Expect(err).NotTo(HaveOccurred())

		By("the benchmark's paging proxy (HTTP level) gives the same snapshot, in pages")
		paging, err := testenv.StartProxy(moto.URL)
		Expect(err).NotTo(HaveOccurred())
		defer paging.Stop()
		paging.PageAccountDetails(3)
		viaProxy := iam.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: iamc.Options().Credentials},
			func(o *iam.Options) { o.BaseEndpoint = aws.String(paging.URL) })
		proxied, err := role.Snapshot(ctx, viaProxy, rolePath)
		Expect(err).NotTo(HaveOccurred())
		// At least this spec's 4 roles, 3 per page: at least 2 pages.
		Expect(paging.Calls("GetAccountAuthorizationDetails", "")).To(BeNumerically(">=", 2))
		for i := range 4 {
			Expect(proxied).To(HaveKey(roleNameFor(ns, fmt.Sprintf("app-%d", i))))
		}
		for name, got := range proxied {
			if want, ok := snap[name]; ok {
				Expect(got).To(Equal(want), name)
			}
		}
		observer := role.Client{IAM: iamc}
		Expect(len(snap)).To(BeNumerically(">=", 4))
		for name, got := range snap {
			want, err := observer.Observe(ctx, name)
			if want == nil && err == nil {
				continue // deleted between the two reads by another spec's cleanup
			}
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(Equal(want), name)
		}
		for i := range 4 {
			deleteBinding(ns, fmt.Sprintf("app-%d", i))
		}
	})

	It("leaves in-sync bindings alone: no per-binding IAM reads or writes in steady state", func() {
		ns := newNamespace()
		var names []string
		for i := range 5 {
			Expect(k8s.Create(ctx, newBinding(ns, fmt.Sprintf("quiet-%d", i), fmt.Sprintf("quiet-%d", i)))).To(Succeed())
		}
		for i := range 5 {
			names = append(names, waitReady(ns, fmt.Sprintf("quiet-%d", i)).Status.RoleName)
		}
		// Let the creation's own follow-up reconciles finish.
		waitQuiet(func() float64 { return reconciles("podidentitybinding") }, time.Second)
		reads := map[string]int{}
		for _, n := range names {
			reads[n] = roleCalls(n, perRoleReads...)
		}
		sweeps := proxy.Calls("GetAccountAuthorizationDetails", "")
		writes := iamWrites()

		By("two sweeps pass")
		Eventually(func() int { return proxy.Calls("GetAccountAuthorizationDetails", "") }, 3*syncPeriod, interval).
			Should(BeNumerically(">=", sweeps+2), "the sweep ran twice")
		for _, n := range names {
			Expect(roleCalls(n, perRoleReads...)).To(Equal(reads[n]), "per-role reads of %s", n)
		}
		Expect(iamWrites()).To(Equal(writes))

		By("an out-of-band change to one role is found by the sweep and corrected; the others are still not read")
		_, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(names[0]), PolicyName: aws.String("backdoor"),
			PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return inlinePolicyNames(names[0]) }, 3*syncPeriod, interval).Should(Equal([]string{"podidentity-permissions"}))
		Expect(eventReasons(ns, "quiet-0")).To(ContainElement("DriftCorrected"))
		for _, n := range names[1:] {
			Expect(roleCalls(n, perRoleReads...)).To(Equal(reads[n]), "per-role reads of %s", n)
		}
		for i := range 5 {
			deleteBinding(ns, fmt.Sprintf("quiet-%d", i))
		}
	})
})
