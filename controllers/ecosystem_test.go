package controllers_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/internal/argocd"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// argoHealth runs the binding's Argo CD health check on the binding as the API server returns it.
func argoHealth(ns, name string) argocd.Health {
	root, err := testenv.RepoRoot()
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	script, err := os.ReadFile(filepath.Join(root, "config", "argocd", "resource_customizations", "iam.podidentity.io", "PodIdentityBinding", "health.lua"))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("iam.podidentity.io/v1alpha1")
	u.SetKind("PodIdentityBinding")
	ExpectWithOffset(1, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
	h, err := argocd.Evaluate(string(script), u.Object)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return h
}

// kubectl runs the kubectl built with the envtest binaries against the test API server.
func kubectl(stdin string, args ...string) (string, error) {
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	_, err := testenv.AdminKubeconfig(env, "argocd-test", path)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"--kubeconfig", path}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var _ = Describe("Argo CD", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("health check reads real bindings: Healthy, Degraded and Progressing", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "healthy", "healthy"))).To(Succeed())
		waitReady(ns, "healthy")
		Expect(argoHealth(ns, "healthy")).To(Equal(argocd.Health{Status: "Healthy",
			Message: "Available: pods using ServiceAccount healthy can assume IAM role " + getBinding(ns, "healthy").Status.RoleName}))

		By("a ServiceAccount conflict is Degraded with the condition message")
		Expect(k8s.Create(ctx, newBinding(ns, "zz-second", "healthy"))).To(Succeed())
		Eventually(readyReason(ns, "zz-second"), timeout, interval).Should(Equal("ServiceAccountConflict"))
		h := argoHealth(ns, "zz-second")
		Expect(h.Status).To(Equal("Degraded"))
		Expect(h.Message).To(ContainSubstring("ServiceAccountConflict: ServiceAccount healthy is already bound"))

		By("an IAM outage is Progressing")
		proxy.SetDown(true)
		DeferCleanup(func() { proxy.SetDown(false) })
		Expect(k8s.Create(ctx, newBinding(ns, "waiting", "waiting"))).To(Succeed())
		Eventually(readyReason(ns, "waiting"), timeout, interval).Should(Equal("IAMUnavailable"))
		h = argoHealth(ns, "waiting")
		Expect(h.Status).To(Equal("Progressing"))
		Expect(h.Message).To(ContainSubstring("IAMUnavailable"))
		proxy.SetDown(false)
		waitReady(ns, "waiting")
		Expect(argoHealth(ns, "waiting").Status).To(Equal("Healthy"))

		for _, n := range []string{"zz-second", "healthy", "waiting"} {
			deleteBinding(ns, n)
		}
	})

	It("leaves an application's ServiceAccount in sync under client-side and server-side apply", func() {
		manifest := `apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
  namespace: ` + ns + `
  labels:
    app.kubernetes.io/instance: shop
  annotations:
    team: shop
`
		By("Argo CD's client-side apply creates the ServiceAccount")
		out, err := kubectl(manifest, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")
		Eventually(annotation(ns, "app", "eks.amazonaws.com/role-arn"), timeout, interval).Should(Equal(b.Status.RoleArn))
		sa, err := serviceAccount(ns, "app")
		Expect(err).NotTo(HaveOccurred())
		Expect(sa.OwnerReferences).To(BeEmpty(), "a ServiceAccount the application owns is not adopted")

		By("re-applying the same manifest, client-side, changes nothing")
		rv := sa.ResourceVersion
		out, err = kubectl(manifest, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("unchanged"))
		sa, err = serviceAccount(ns, "app")
		Expect(err).NotTo(HaveOccurred())
		Expect(sa.ResourceVersion).To(Equal(rv))
		Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", b.Status.RoleArn))

		By("server-side apply with Argo CD's field manager keeps our annotation")
		for range 2 {
			out, err = kubectl(manifest, "apply", "--server-side", "--field-manager=argocd-controller", "--force-conflicts", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), out)
		}
		sa, err = serviceAccount(ns, "app")
		Expect(err).NotTo(HaveOccurred())
		Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", b.Status.RoleArn))
		Expect(sa.Annotations).To(HaveKeyWithValue("team", "shop"))

		By("no field flaps: the ServiceAccount stays unchanged over several sync periods")
		rv = sa.ResourceVersion
		Consistently(func() string {
			s, err := serviceAccount(ns, "app")
			if err != nil {
				return err.Error()
			}
			return s.ResourceVersion
		}, 2*syncPeriod, interval).Should(Equal(rv))

		By("Argo CD's diff shows nothing to sync: its own fields are as declared")
		out, err = kubectl(manifest, "diff", "--server-side", "--field-manager=argocd-controller", "--force-conflicts", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(strings.TrimSpace(out)).To(BeEmpty())
		deleteBinding(ns, "app")
		Expect(annotation(ns, "app", "team")()).To(Equal("shop"))
	})
})
