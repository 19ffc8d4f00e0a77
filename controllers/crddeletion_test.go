package controllers_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/cmd/operator"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// Issue 18 (second part): Argo CD ignores helm.sh/resource-policy: keep, so
// pruning the CRD deletes every binding; the operator must then keep every
// role. This spec runs on an API server of its own (deleting the CRD of the
// suite's would take every other spec's bindings with it), with moto shared.
// startSecondOperator starts an API server of its own and an operator on
// it (cluster name crd-deletion, its own role path), with opts changed by
// mutate; both stop at the end of the spec.
func startSecondOperator(mutate func(o *operator.Options)) (client.Client, *rest.Config) {
	root, err := testenv.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	env2 := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg2, err := env2.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(env2.Stop()).To(Succeed()) })
	k2, err := client.New(cfg2, client.Options{Scheme: operator.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	cs, err := kubernetes.NewForConfig(cfg2)
	Expect(err).NotTo(HaveOccurred())
	raw, err := cs.RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	Expect(err).NotTo(HaveOccurred())
	var disco struct {
		Issuer string `json:"issuer"`
	}
	Expect(json.Unmarshal(raw, &disco)).To(Succeed())
	_, err = testenv.RegisterOIDCProvider(ctx, iamc, disco.Issuer) // its own port: its own issuer
	Expect(err).NotTo(HaveOccurred())

	opts := operator.Options{}
	opts.BindFlags(flagSet())
	opts.ClusterName = "crd-deletion"
	opts.RolePath = "/podidentity-crd-deletion/"
	opts.SyncPeriod = syncPeriod
	opts.MetricsBindAddress = "0"
	opts.HealthProbeBindAddress = "0"
	opts.SkipControllerNameValidation = true
	opts.SkipBindingsMetric = true
	if mutate != nil {
		mutate(&opts)
	}
	opCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		done <- operator.Run(opCtx, cfg2, opts, logf.Log.WithName("operator-crd-deletion"))
	}()
	DeferCleanup(func() {
		stop()
		Eventually(done, timeout).Should(Receive())
	})
	select {
	case err := <-done:
		Fail(fmt.Sprintf("the second operator stopped: %v", err))
	case <-time.After(2 * time.Second):
	}
	return k2, cfg2
}

var _ = Describe("Deleting the PodIdentityBinding CRD", Label("crd-deletion"), func() {
	It("keeps every role, tagged as retained, and the ServiceAccount annotations", func() {
		k2, cfg2 := startSecondOperator(nil)
		By("two bindings, Delete and Retain, with their roles")
		Expect(k2.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}})).To(Succeed())
		del := newBinding("apps", "deleter", "deleter")
		ret := newBinding("apps", "keeper", "keeper")
		ret.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
		Expect(k2.Create(ctx, del)).To(Succeed())
		Expect(k2.Create(ctx, ret)).To(Succeed())
		roleOf := func(name string) string {
			var role string
			Eventually(func() bool {
				b := &v1alpha1.PodIdentityBinding{}
				Expect(k2.Get(ctx, client.ObjectKey{Namespace: "apps", Name: name}, b)).To(Succeed())
				role = b.Status.RoleName
				c := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionRoleSynced)
				return c != nil && c.Status == metav1.ConditionTrue
			}, timeout, interval).Should(BeTrue())
			return role
		}
		roles := []string{roleOf("deleter"), roleOf("keeper")}
		kept := counterSum("podidentity_roles_kept_on_crd_deletion_total")

		By("the CRD is deleted, as an Argo CD prune would")
		dyn, err := dynamic.NewForConfig(cfg2)
		Expect(err).NotTo(HaveOccurred())
		crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
		const crdName = "podidentitybindings.iam.podidentity.io"
		Expect(crds.Delete(ctx, crdName, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			_, err := crds.Get(ctx, crdName, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, 2*timeout, interval).Should(BeTrue())

		By("every role is still in IAM, tagged retained, and the ServiceAccounts keep their annotations")
		for _, r := range roles {
			s := snapshotRole(r)
			Expect(s.Tags).To(HaveKeyWithValue("podidentity.io/retained", "true"), r)
			Expect(s.Inline).To(HaveKey("podidentity-permissions"), r)
		}
		for _, sa := range []string{"deleter", "keeper"} {
			got := &metav1.PartialObjectMetadata{}
			got.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"})
			Expect(k2.Get(ctx, client.ObjectKey{Namespace: "apps", Name: sa}, got)).To(Succeed())
			Expect(got.Annotations).To(HaveKey("eks.amazonaws.com/role-arn"))
		}
		Expect(counterSum("podidentity_roles_kept_on_crd_deletion_total") - kept).To(BeNumerically("==", 2))
		Eventually(func() []string {
			list := &eventsv1.EventList{}
			Expect(k2.List(ctx, list, client.InNamespace("apps"))).To(Succeed())
			var warned []string
			for _, e := range list.Items {
				if e.Reason == "CRDDeleted" && e.Type == corev1.EventTypeWarning {
					warned = append(warned, e.Regarding.Name)
				}
			}
			return warned
		}, timeout, interval).Should(ConsistOf("deleter", "keeper"), "one CRDDeleted Warning per binding")
		for _, r := range roles {
			deleteRoleDirectly(r)
		}
	})
})

// Issue 18 (metrics TLS): with --metrics-cert-path the metrics endpoint
// serves the mounted certificate, so a ServiceMonitor can verify it with
// its CA instead of insecureSkipVerify.
var _ = Describe("Metrics certificate", func() {
	It("serves the certificate from --metrics-cert-path", func() {
		dir := GinkgoT().TempDir()
		caPEM, certPEM, keyPEM := testenv.SelfSignedCert("podidentity-metrics.example")
		Expect(os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600)).To(Succeed())
		port, err := testenv.FreePort()
		Expect(err).NotTo(HaveOccurred())
		startSecondOperator(func(o *operator.Options) {
			o.MetricsBindAddress = fmt.Sprintf("127.0.0.1:%d", port)
			o.MetricsSecure = true
			o.MetricsCertPath = dir
		})
		pool := x509.NewCertPool()
		Expect(pool.AppendCertsFromPEM(caPEM)).To(BeTrue())
		Eventually(func() error {
			conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, ServerName: "podidentity-metrics.example"})
			if err != nil {
				return err
			}
			return conn.Close()
		}, timeout, interval).Should(Succeed(), "the endpoint's certificate verifies against the mounted certificate's CA")
	})
})
