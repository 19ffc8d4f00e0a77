package controllers_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/internal/webhookcert"
)

// patchHook runs once, just before the first Patch it forwards: a way to put
// another replica's work between this replica's read and its write.
type patchHook struct {
	client.Client
	before func()
}

func (c *patchHook) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if c.before != nil {
		f := c.before
		c.before = nil
		f()
	}
	return c.Client.Patch(ctx, obj, patch, opts...)
}

var _ = Describe("Self-managed webhook certificate rotation with several replicas", func() {
	const day = 24 * time.Hour
	var (
		ns         string
		vwcName    string
		replicaA   webhookcert.Options
		replicaB   webhookcert.Options
		rotateWith webhookcert.Options // replica A, when its certificate is due for renewal
	)

	// bundle reads the CA bundle the API server would use, from the API server.
	bundle := func() []byte {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: vwcName}, vwc)).To(Succeed())
		return vwc.Webhooks[0].ClientConfig.CABundle
	}
	// trusted reports whether the certificate a replica serves verifies
	// against the webhook configuration's bundle for the Service's name.
	trusted := func(dir string) error {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		if err != nil {
			return err
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(bundle()) {
			return fmt.Errorf("empty CA bundle")
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "svc." + ns + ".svc"})
		return err
	}
	served := func(dir string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
		Expect(err).NotTo(HaveOccurred())
		return b
	}
	countCAs := func(b []byte) int {
		n := 0
		for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
			n++
		}
		return n
	}

	BeforeEach(func() {
		ns = newNamespace()
		vwcName = "rotation-" + ns
		Expect(k8s.Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: vwcName},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name: "v.rotation.test", AdmissionReviewVersions: []string{"v1"}, SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone),
				ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "svc", Path: ptr.To("/x")}},
				// Matches nothing, so it never intercepts this suite's requests.
				Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"example.invalid"}, APIVersions: []string{"v1"}, Resources: []string{"nothing"}}}},
			}},
		})).To(Succeed())
		DeferCleanup(func() {
			Expect(k8s.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: vwcName}})).To(Succeed())
		})
		// The pod identity webhook's configuration shares the certificate.
		Expect(k8s.Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: vwcName},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{
				Name: "m.rotation.test", AdmissionReviewVersions: []string{"v1"}, SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone),
				FailurePolicy: ptr.To(admissionregistrationv1.Ignore),
				ClientConfig:  admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "svc", Path: ptr.To("/m")}},
				Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"example.invalid"}, APIVersions: []string{"v1"}, Resources: []string{"nothing"}}}},
			}},
		})).To(Succeed())
		DeferCleanup(func() {
			Expect(k8s.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: vwcName}})).To(Succeed())
		})
		replicaA = webhookcert.Options{ServiceName: "svc", Namespace: ns, WebhookConfigName: vwcName, MutatingWebhookConfigName: vwcName,
			SecretName: "webhook-cert", CertDir: GinkgoT().TempDir(), Validity: 40 * day}
		replicaB = replicaA
		replicaB.CertDir = GinkgoT().TempDir()
		// Replica A's clock says renewal is due: 40 days of validity left is
		// less than 45.
		rotateWith = replicaA
		rotateWith.RenewBefore = 45 * day

		Expect(webhookcert.Ensure(ctx, k8s, replicaA)).To(Succeed())
		Expect(webhookcert.Ensure(ctx, k8s, replicaB)).To(Succeed())
		Expect(served(replicaB.CertDir)).To(Equal(served(replicaA.CertDir)))
	})

	It("keeps the previous CA trusted until every replica serves the new certificate", func() {
		first := served(replicaA.CertDir)
		Expect(webhookcert.Ensure(ctx, k8s, rotateWith)).To(Succeed())
		Expect(served(replicaA.CertDir)).NotTo(Equal(first), "replica A renewed")

		By("both the renewed replica and the one still serving the old certificate are trusted")
		Expect(trusted(replicaA.CertDir)).To(Succeed())
		Expect(served(replicaB.CertDir)).To(Equal(first))
		Expect(trusted(replicaB.CertDir)).To(Succeed())

		By("replica B reloads the Secret on its own timer")
		keepCtx, stop := context.WithCancel(ctx)
		defer stop()
		reloading := replicaB
		reloading.ReloadInterval = 50 * time.Millisecond
		go webhookcert.Keep(keepCtx, k8s, reloading, GinkgoLogr)
		Eventually(func() []byte { return served(replicaB.CertDir) }).Should(Equal(served(replicaA.CertDir)))
		Expect(trusted(replicaB.CertDir)).To(Succeed())

		By("a second rotation drops the oldest CA: the bundle holds the current and the previous one")
		Expect(webhookcert.Ensure(ctx, k8s, rotateWith)).To(Succeed())
		Expect(countCAs(bundle())).To(Equal(2))
		sec := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "webhook-cert"}, sec)).To(Succeed())
		Expect(sec.Data["ca.crt"]).To(Equal(bundle()))
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: vwcName}, mwc)).To(Succeed())
		Expect(mwc.Webhooks[0].ClientConfig.CABundle).To(Equal(bundle()), "the pod identity webhook trusts the same bundle")
		Eventually(func() []byte { return served(replicaB.CertDir) }).Should(Equal(served(replicaA.CertDir)))
		Expect(trusted(replicaA.CertDir)).To(Succeed())
	})

	It("a replica that wrote an older bundle while another rotated puts the newer one back", func() {
		By("the CA bundle is reset, as a GitOps re-apply of the webhook configuration would")
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: vwcName}, vwc)).To(Succeed())
		vwc.Webhooks[0].ClientConfig.CABundle = nil
		Expect(k8s.Update(ctx, vwc)).To(Succeed())

		By("replica B restores the bundle it read, but replica A rotates between B's read and B's write")
		slow := &patchHook{Client: k8s, before: func() {
			Expect(webhookcert.Ensure(ctx, k8s, rotateWith)).To(Succeed())
		}}
		Expect(webhookcert.Ensure(ctx, slow, replicaB)).To(Succeed())
		Expect(slow.before).To(BeNil(), "the rotation ran in between")

		Expect(trusted(replicaA.CertDir)).To(Succeed(), "the bundle trusts the rotated certificate")
		Expect(served(replicaB.CertDir)).To(Equal(served(replicaA.CertDir)))
		Expect(trusted(replicaB.CertDir)).To(Succeed())
	})
})
