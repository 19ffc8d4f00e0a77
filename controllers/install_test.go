package controllers_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/cmd/operator"
	"github.com/podidentity/podidentity-operator/controllers/podidentitywebhook"
	"github.com/podidentity/podidentity-operator/internal/testenv"
	"github.com/podidentity/podidentity-operator/internal/webhookcert"
)

// render builds a kustomization under config/ with kustomize's own library.
// With components (paths under config/), it builds what a user's
// kustomization would: the directory as a resource plus those components.
func render(dir string, components ...string) []*unstructured.Unstructured {
	objs, err := build(dir, components...)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return objs
}

// build is render that returns kustomize's error.
func build(dir string, components ...string) ([]*unstructured.Unstructured, error) {
	return testenv.Kustomize(dir, components...)
}

// createNamespaces really creates the rendered Namespaces: objects inside a
// namespace cannot be dry-run created without it.
func createNamespaces(objs []*unstructured.Unstructured) {
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			ExpectWithOffset(1, o.GetName()).To(Equal("podidentity-system"))
			err := k8s.Create(ctx, o.DeepCopy())
			if !apierrors.IsAlreadyExists(err) {
				ExpectWithOffset(1, err).NotTo(HaveOccurred())
			}
		}
	}
}

// dryRunApply has the API server accept every rendered object with a
// server-side dry run, after really creating their Namespaces. Webhooks are
// never really registered: they would send this suite's requests to a
// Service that does not exist.
func dryRunApply(objs []*unstructured.Unstructured) {
	createNamespaces(objs)
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			continue
		}
		if o.GetKind() == "MutatingWebhookConfiguration" {
			// The suite serves this configuration under the same name,
			// pointed at a local URL; check the rendered one beside it.
			o = o.DeepCopy()
			o.SetName(o.GetName() + "-rendered")
		}
		ExpectWithOffset(1, k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.DryRunAll,
			client.FieldOwner("install-test"), client.ForceOwnership)).To(Succeed(), "%s %s", o.GetKind(), o.GetName())
	}
}

// checkWebhookManifests checks a rendering with a webhook component: the
// operator's defaults name exactly what the manifests create, a
// PodDisruptionBudget keeps the fail-closed webhook served, the
// self-managed certificate's RBAC names what it writes, and the pod identity
// webhook shares the Service and certificate.
func checkWebhookManifests(objs []*unstructured.Unstructured, opts operator.Options, selfManaged, podWebhook bool) {
	resourceNames := map[string]bool{}
	var vwc, mwc, svc, deploy, pdb *unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "PodDisruptionBudget":
			pdb = o
		case "ValidatingWebhookConfiguration":
			vwc = o
		case "MutatingWebhookConfiguration":
			mwc = o
		case "Service":
			if strings.Contains(o.GetName(), "webhook") {
				svc = o
			}
		case "Deployment":
			deploy = o
		case "Certificate":
			names, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "dnsNames")
			if secret, _, _ := unstructured.NestedString(o.Object, "spec", "secretName"); secret == opts.WebhookSecretName {
				Expect(names).To(ContainElement(opts.WebhookServiceName + "." + opts.WebhookNamespace + ".svc"))
			} else {
				// The metrics certificate, for the metrics Service.
				Expect(secret).To(Equal("podidentity-metrics-server-cert"))
				Expect(names).To(ContainElement("podidentity-controller-manager-metrics-service." + opts.WebhookNamespace + ".svc"))
			}
		case "Role", "ClusterRole":
			rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
			for _, r := range rules {
				names, _ := r.(map[string]any)["resourceNames"].([]any)
				for _, n := range names {
					resourceNames[n.(string)] = true
				}
			}
		}
	}
	Expect(vwc).NotTo(BeNil())
	Expect(svc).NotTo(BeNil())
	// The operator's defaults name exactly what the manifests create.
	Expect(svc.GetName()).To(Equal(opts.WebhookServiceName))
	Expect(svc.GetNamespace()).To(Equal(opts.WebhookNamespace))
	Expect(vwc.GetName()).To(Equal(opts.WebhookConfigName))
	webhooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	Expect(webhooks).To(HaveLen(2))
	for _, w := range webhooks {
		ref := w.(map[string]any)["clientConfig"].(map[string]any)["service"].(map[string]any)
		Expect(ref["name"]).To(Equal(svc.GetName()))
		Expect(ref["namespace"]).To(Equal(svc.GetNamespace()))
	}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	Expect(containers[0].(map[string]any)["args"]).To(ContainElement("--enable-webhooks"))
	By("a PodDisruptionBudget keeps a replica serving the fail-closed webhook")
	Expect(pdb).NotTo(BeNil())
	Expect(pdb.GetNamespace()).To(Equal(deploy.GetNamespace()))
	minAvailable, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable")
	Expect(minAvailable).To(BeEquivalentTo(1))
	podLabels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
	pdbSel, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
	Expect(pdbSel).NotTo(BeEmpty())
	for k, v := range pdbSel {
		Expect(podLabels).To(HaveKeyWithValue(k, v))
	}
	replicas, _, _ := unstructured.NestedInt64(deploy.Object, "spec", "replicas")
	Expect(replicas).To(BeNumerically(">", 1), "minAvailable 1 needs a second replica to allow any disruption")
	if selfManaged {
		// The self-managed certificate's RBAC names what the operator touches.
		Expect(resourceNames).To(HaveKey(opts.WebhookConfigName))
		Expect(resourceNames).To(HaveKey(opts.WebhookSecretName))
	}
	if podWebhook {
		By("the pod identity webhook: served by the same Service and certificate, never blocking pods")
		Expect(mwc).NotTo(BeNil())
		Expect(mwc.GetName()).To(Equal(opts.MutatingWebhookConfigName))
		Expect(containers[0].(map[string]any)["args"]).To(ContainElement("--enable-pod-identity-webhook"))
		Expect(resourceNames).To(HaveKey(opts.MutatingWebhookConfigName))
		// cert-manager's CA injector only where cert-manager issues the
		// certificate; the operator writes it otherwise.
		Expect(mwc.GetAnnotations()).To(Equal(vwc.GetAnnotations()))
		if selfManaged {
			Expect(mwc.GetAnnotations()).To(Equal(map[string]string{"podidentity.io/ca-bundle": "self-managed"}))
		} else {
			Expect(mwc.GetAnnotations()["cert-manager.io/inject-ca-from"]).To(Equal("podidentity-system/podidentity-serving-cert"))
		}
		mwebhooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
		Expect(mwebhooks).To(HaveLen(1))
		w := mwebhooks[0].(map[string]any)
		Expect(w["failurePolicy"]).To(Equal("Ignore"))
		ref := w["clientConfig"].(map[string]any)["service"].(map[string]any)
		Expect(ref["name"]).To(Equal(svc.GetName()))
		Expect(ref["namespace"]).To(Equal(svc.GetNamespace()))
		Expect(ref["path"]).To(Equal(podidentitywebhook.Path))
		if !selfManaged {
			Expect(vwc.GetAnnotations()["cert-manager.io/inject-ca-from"]).To(Equal(mwc.GetAnnotations()["cert-manager.io/inject-ca-from"]))
		}
	} else {
		Expect(mwc).To(BeNil())
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

var _ = Describe("Installation manifests", func() {
	It("config/default renders with kustomize and the API server accepts every object (server-side dry run)", func() {
		objs := render("default")
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.GetKind()]++
		}
		Expect(kinds).To(HaveKeyWithValue("CustomResourceDefinition", 3))
		Expect(kinds).To(HaveKeyWithValue("Deployment", 1))
		Expect(kinds).To(HaveKeyWithValue("Namespace", 1))
		Expect(kinds).To(HaveKeyWithValue("Service", 1))
		Expect(kinds).To(HaveKey("ClusterRole"))

		dryRunApply(objs)

		By("the Deployment is hardened")
		for _, o := range objs {
			if o.GetKind() != "Deployment" {
				continue
			}
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			Expect(containers).To(HaveLen(1))
			c := containers[0].(map[string]any)
			sc := c["securityContext"].(map[string]any)
			Expect(sc["readOnlyRootFilesystem"]).To(BeTrue())
			Expect(sc["allowPrivilegeEscalation"]).To(BeFalse())
			Expect(c).To(HaveKey("livenessProbe"))
			Expect(c).To(HaveKey("readinessProbe"))
			Expect(c["args"]).To(ContainElement("--leader-elect"))
			podSC, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec", "securityContext")
			Expect(podSC["runAsNonRoot"]).To(BeTrue())
		}
	})

	It("every combination of config/default and the components renders, the names line up, and the API server accepts it (server-side dry run)", func() {
		Expect(testenv.InstallPrerequisiteCRDs(cfg)).To(Succeed())
		combos := testenv.ComponentCombinations()
		Expect(combos).To(HaveLen(26))
		for _, combo := range combos {
			By("config/default + [" + strings.Join(combo, ", ") + "]")
			has := func(c string) bool { return slices.Contains(combo, "components/"+c) }
			objs := render("default", combo...)
			byKind := map[string][]*unstructured.Unstructured{}
			for _, o := range objs {
				byKind[o.GetKind()] = append(byKind[o.GetKind()], o)
			}
			Expect(byKind["Deployment"]).To(HaveLen(1))
			deploy := byKind["Deployment"][0]
			By("the operator reads a valid configuration from the Deployment, but for the placeholder cluster name")
			opts, err := operator.OptionsFromDeployment(deploy)
			Expect(err).To(MatchError(HavePrefix(`--cluster-name is "CHANGE-ME": set it (or the environment variable PODIDENTITY_CLUSTER_NAME)`)))
			Expect(err.Error()).NotTo(ContainSubstring("\n"), "one error only")
			Expect(opts.EnablePodRestarts).To(Equal(has("pod-restarts")))
			Expect(opts.EnablePodIdentityWebhook).To(Equal(has("pod-identity-webhook")))
			Expect(opts.EnableWebhooks).To(Equal(has("webhook-cert-manager") || has("webhook-self-managed")))
			Expect(opts.WebhookCertSelfManaged).To(Equal(has("webhook-self-managed")))

			if opts.EnableWebhooks {
				checkWebhookManifests(objs, opts, has("webhook-self-managed"), has("pod-identity-webhook"))
			} else {
				Expect(byKind).NotTo(HaveKey("ValidatingWebhookConfiguration"))
				Expect(byKind).NotTo(HaveKey("MutatingWebhookConfiguration"))
			}
			Expect(byKind["Certificate"]).To(HaveLen(btoi(has("webhook-cert-manager")) + btoi(has("metrics-cert-manager"))))
			Expect(opts.MetricsCertPath != "").To(Equal(has("metrics-cert-manager")))
			Expect(byKind["ServiceMonitor"]).To(HaveLen(btoi(has("prometheus"))))
			Expect(byKind["PrometheusRule"]).To(HaveLen(btoi(has("prometheus"))))
			if has("prometheus") {
				monitor := byKind["ServiceMonitor"][0]
				Expect(monitor.GetNamespace()).To(Equal("podidentity-system"))
				Expect(byKind["PrometheusRule"][0].GetNamespace()).To(Equal("podidentity-system"))
				sel, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
				var selected []string
				for _, svc := range byKind["Service"] {
					if labels.SelectorFromSet(sel).Matches(labels.Set(svc.GetLabels())) {
						selected = append(selected, svc.GetName())
					}
				}
				Expect(selected).To(Equal([]string{"podidentity-controller-manager-metrics-service"}))
			}

			dryRunApply(objs)
		}

		By("components that cannot work together stop the build, saying why")
		_, err := build("default", "components/pod-identity-webhook")
		Expect(err).To(MatchError(ContainSubstring("podidentity-webhook-service")), "the pod identity webhook without a webhook component")
		_, err = build("default", "components/pod-identity-webhook", "components/webhook-self-managed")
		Expect(err).To(HaveOccurred(), "the pod identity webhook before the webhook component")
		_, err = build("default", "components/webhook-cert-manager", "components/webhook-self-managed")
		Expect(err).To(MatchError(ContainSubstring("already registered id")), "two webhook components")

		By("the overlays are config/default plus one component")
		for overlay, component := range map[string]string{"overlays/webhook-cert-manager": "components/webhook-cert-manager",
			"overlays/webhook-self-managed": "components/webhook-self-managed", "overlays/prometheus": "components/prometheus"} {
			Expect(render(overlay)).To(Equal(render("default", component)), overlay)
		}
	})

	It("docs/gitops.md's kustomization builds from this checkout, configures the operator validly, and the API server accepts it", func() {
		Expect(testenv.InstallPrerequisiteCRDs(cfg)).To(Succeed())
		root, err := testenv.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		doc, err := os.ReadFile(filepath.Join(root, "docs", "gitops.md"))
		Expect(err).NotTo(HaveOccurred())
		example := testenv.FencedBlock(string(doc), "yaml", "# kustomization.yaml")
		Expect(example).NotTo(BeEmpty())
		By("the remote base and components at a release tag become this checkout's")
		const remote = "https://github.com/podidentity/podidentity-operator//config/"
		remotes := strings.Count(example, remote)
		Expect(remotes).To(BeNumerically(">=", 3), "the base and at least two components")
		refs := regexp.MustCompile(`\?ref=v\d+\.\d+\.\d+\n`).FindAllString(example, -1)
		Expect(refs).To(HaveLen(remotes), "every remote line pins a release tag")
		local := regexp.MustCompile(`\?ref=\S+`).ReplaceAllString(strings.ReplaceAll(example, remote, "../"), "")
		objs, err := testenv.KustomizeUnder(filepath.Join(root, "config"), local)
		Expect(err).NotTo(HaveOccurred())

		byKind := map[string][]*unstructured.Unstructured{}
		for _, o := range objs {
			byKind[o.GetKind()] = append(byKind[o.GetKind()], o)
		}
		Expect(byKind["ValidatingWebhookConfiguration"]).To(HaveLen(1))
		Expect(byKind["ServiceMonitor"]).To(HaveLen(1))
		Expect(byKind["Deployment"]).To(HaveLen(1))
		opts, err := operator.OptionsFromDeployment(byKind["Deployment"][0])
		Expect(err).NotTo(HaveOccurred(), "the operator would refuse to start")
		Expect(opts.ClusterName).To(Equal("prod-eu-west-1"))
		Expect(opts.PermissionsBoundaryARN).To(Equal("arn:aws:iam::111122223333:policy/podidentity-boundary"))
		Expect(opts.WebhookCertSelfManaged).To(BeTrue())
		containers, _, _ := unstructured.NestedSlice(byKind["Deployment"][0].Object, "spec", "template", "spec", "containers")
		c := containers[0].(map[string]any)
		Expect(c["image"]).To(MatchRegexp(`^ghcr\.io/podidentity/podidentity-operator:v\d+\.\d+\.\d+$`), "pinned to a release")
		var envNames []string
		for _, e := range c["env"].([]any) {
			envNames = append(envNames, e.(map[string]any)["name"].(string))
		}
		Expect(envNames).To(ContainElements("AWS_REGION", "AWS_STS_REGIONAL_ENDPOINTS"), "the patch merges by name and keeps the base's variables")
		var sa *unstructured.Unstructured
		for _, o := range byKind["ServiceAccount"] {
			if o.GetName() == "podidentity-controller-manager" {
				sa = o
			}
		}
		Expect(sa).NotTo(BeNil())
		Expect(sa.GetAnnotations()).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", "arn:aws:iam::111122223333:role/podidentity-operator-prod-eu-west-1"))

		dryRunApply(objs)
	})

	It("the self-managed webhook certificate is served for the Service and its CA is injected", func() {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "selfmanaged-test"},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{
				Name: "v.selfmanaged.test", AdmissionReviewVersions: []string{"v1"}, SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone),
				ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "ns", Name: "svc", Path: ptr.To("/x")}},
				// Matches nothing, so it never intercepts this suite's requests.
				Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"example.invalid"}, APIVersions: []string{"v1"}, Resources: []string{"nothing"}}}},
			}},
		}
		Expect(k8s.Create(ctx, vwc)).To(Succeed())
		ns := newNamespace()
		opts := webhookcert.Options{ServiceName: "podidentity-webhook-service", Namespace: "podidentity-system",
			WebhookConfigName: "selfmanaged-test", SecretName: "webhook-cert-" + ns}
		// The Secret lives in the operator's namespace; use a fresh one per run.
		opts.Namespace = ns
		opts.ServiceName = "svc"
		dir := GinkgoT().TempDir()
		opts.CertDir = dir
		Expect(webhookcert.Ensure(ctx, k8s, opts)).To(Succeed())

		By("a second replica serves the same certificate and keeps the CA")
		first, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
		Expect(err).NotTo(HaveOccurred())
		opts.CertDir = GinkgoT().TempDir()
		Expect(webhookcert.Ensure(ctx, k8s, opts)).To(Succeed())
		second, err := os.ReadFile(filepath.Join(opts.CertDir, "tls.crt"))
		Expect(err).NotTo(HaveOccurred())
		Expect(second).To(Equal(first))

		By("a certificate that expires within 30 days is replaced")
		short := opts
		short.SecretName = "short-" + ns
		short.Validity = 10 * 24 * time.Hour
		short.CertDir = GinkgoT().TempDir()
		Expect(webhookcert.Ensure(ctx, k8s, short)).To(Succeed())
		expiring, err := os.ReadFile(filepath.Join(short.CertDir, "tls.crt"))
		Expect(err).NotTo(HaveOccurred())
		short.Validity = 0 // the default, a year
		Expect(webhookcert.Ensure(ctx, k8s, short)).To(Succeed())
		renewed, err := os.ReadFile(filepath.Join(short.CertDir, "tls.crt"))
		Expect(err).NotTo(HaveOccurred())
		Expect(renewed).NotTo(Equal(expiring))
		// Put the long-lived CA back for the checks below.
		opts.CertDir = dir
		Expect(webhookcert.Ensure(ctx, k8s, opts)).To(Succeed())

		got := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		Expect(k8s.Get(ctx, client.ObjectKey{Name: "selfmanaged-test"}, got)).To(Succeed())
		pool := x509.NewCertPool()
		Expect(pool.AppendCertsFromPEM(got.Webhooks[0].ClientConfig.CABundle)).To(BeTrue())
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		sec := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: opts.SecretName}, sec)).To(Succeed())
		Expect(sec.Data["ca.crt"]).To(Equal(got.Webhooks[0].ClientConfig.CABundle))
		Expect(err).NotTo(HaveOccurred())
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		Expect(err).NotTo(HaveOccurred())
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "svc." + ns + ".svc"})
		Expect(err).NotTo(HaveOccurred())
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "evil.example.com"})
		Expect(err).To(HaveOccurred())
		Expect(k8s.Delete(ctx, got)).To(Succeed())
	})

	It("only the pod-restarts component gives the operator write access to workloads", func() {
		writesWorkloads := func(objs []*unstructured.Unstructured) map[string][]string {
			got := map[string][]string{}
			for _, o := range objs {
				if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
					continue
				}
				rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
				for _, r := range rules {
					rule := r.(map[string]any)
					groups, _ := rule["apiGroups"].([]any) // absent for nonResourceURLs
					resources, _ := rule["resources"].([]any)
					for _, g := range groups {
						if g != "apps" {
							continue
						}
						for _, res := range resources {
							for _, v := range rule["verbs"].([]any) {
								got[res.(string)] = append(got[res.(string)], v.(string))
							}
						}
					}
				}
			}
			return got
		}
		Expect(writesWorkloads(render("default"))).To(BeEmpty())
		objs := render("default", "components/pod-restarts")
		Expect(writesWorkloads(objs)).To(Equal(map[string][]string{
			"replicasets": {"get"}, "deployments": {"get", "patch"}, "statefulsets": {"get", "patch"}, "daemonsets": {"get", "patch"}}))
		for _, o := range objs {
			if o.GetKind() == "Deployment" {
				containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
				Expect(containers[0].(map[string]any)["args"]).To(ContainElement("--enable-pod-restarts"))
			}
		}
		dryRunApply(objs)
	})

	It("every sample in config/samples becomes Ready", func() {
		ns := newNamespaceWithLabels(map[string]string{"podidentity.io/profile": "restricted"})
		var objs []*unstructured.Unstructured
		for _, o := range render("samples") {
			if o.GetKind() != "PodIdentityGuardrail" {
				objs = append(objs, o)
				continue
			}
			// The sample guardrail selects this namespace; the samples satisfy it.
			g := &v1alpha1.PodIdentityGuardrail{}
			raw, err := yaml.Marshal(o.Object)
			Expect(err).NotTo(HaveOccurred())
			Expect(yaml.UnmarshalStrict(raw, g)).To(Succeed())
			Expect(k8s.Create(ctx, g)).To(Succeed())
			DeferCleanup(func() { Expect(k8s.Delete(ctx, g)).To(Succeed()) })
		}
		Expect(objs).To(HaveLen(3))
		for _, o := range objs {
			b := &v1alpha1.PodIdentityBinding{}
			raw, err := yaml.Marshal(o.Object)
			Expect(err).NotTo(HaveOccurred())
			Expect(yaml.UnmarshalStrict(raw, b)).To(Succeed())
			b.Namespace = ns
			Expect(k8s.Create(ctx, b)).To(Succeed())
		}
		for _, o := range objs {
			b := waitReady(ns, o.GetName())
			_, err := getRole(b.Status.RoleName)
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(attachedPolicies(getBinding(ns, "reporting").Status.RoleName)).To(Equal([]string{"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}))
		for _, o := range objs {
			deleteBinding(ns, o.GetName())
		}
		// "reporting" is Retain: its role stays; clean it up for the other specs.
		Expect(roleGone(roleNameFor(ns, "uploads-writer"))()).To(BeTrue())
		_, err := getRole(roleNameFor(ns, "reporting"))
		Expect(err).NotTo(HaveOccurred())
	})
})

var _ = Describe("Metrics", func() {
	It("serves the operator's metrics to an authorized scraper only", func() {
		ns := newNamespace()
		Expect(k8s.Create(ctx, newBinding(ns, "metered", "metered"))).To(Succeed())
		waitReady(ns, "metered")

		By("a ServiceAccount bound to config/rbac's metrics reader role")
		root, err := testenv.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		raw, err := os.ReadFile(filepath.Join(root, "config", "rbac", "metrics_reader_role.yaml"))
		Expect(err).NotTo(HaveOccurred())
		reader := &rbacv1.ClusterRole{}
		Expect(yaml.UnmarshalStrict(raw, reader)).To(Succeed())
		Expect(k8s.Create(ctx, reader)).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prometheus"}})).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stranger"}})).To(Succeed())
		Expect(k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-" + ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: reader.Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "prometheus"}},
		})).To(Succeed())

		// The manager serves a self-signed certificate in this setup.
		insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
		scrape := func(sa string) (int, string) {
			tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
			Expect(err).NotTo(HaveOccurred())
			req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
			resp, err := insecure.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer func() { _ = resp.Body.Close() }()
			body, err := io.ReadAll(resp.Body)
			Expect(err).NotTo(HaveOccurred())
			return resp.StatusCode, string(body)
		}

		By("no token or a token the API server rejects: 401; a user without the role: 403")
		for _, authz := range []string{"", "Bearer not-a-token"} {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
			Expect(err).NotTo(HaveOccurred())
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			resp, err := insecure.Do(req)
			Expect(err).NotTo(HaveOccurred())
			_ = resp.Body.Close()
			Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized), "Authorization %q", authz)
		}
		Eventually(func() int { code, _ := scrape("stranger"); return code }, timeout, interval).Should(Equal(http.StatusForbidden))
		var body string
		Eventually(func() int { code, b := scrape("prometheus"); body = b; return code }, timeout, interval).Should(Equal(http.StatusOK))
		for _, want := range []string{
			`podidentity_iam_api_calls_total{account="operator",operation="CreateRole",outcome="success"}`,
			`podidentity_iam_api_calls_total{account="operator",operation="PutRolePolicy",outcome="success"}`,
			`podidentity_bindings{account="operator",ready="True",reason="Available"}`,
			`controller_runtime_reconcile_time_seconds_bucket{controller="podidentitybinding"`,
			`podidentity_drift_corrections_total{account="operator",kind="`,
			`podidentity_guardrail_enforcements_total{account="operator",kind="InlinePolicy"}`,
			`podidentity_pods{state="stale"}`,
			`podidentity_status_write_failures_total{reason="Invalid"}`,
			`podidentity_orphan_roles_retired_total{account="operator",action="Parked"}`,
			`podidentity_roles_kept_on_crd_deletion_total`,
			`podidentity_changes_deferred_total`,
		} {
			Expect(body).To(ContainSubstring(want))
		}

		By("the shipped alerts and dashboard parse and use only metrics the operator exports")
		exported := exportedMetrics(body)
		for _, expr := range monitoringQueries() {
			for _, m := range queriedMetrics(expr) {
				Expect(exported).To(HaveKey(m), "%q in %q", m, expr)
			}
		}
		deleteBinding(ns, "metered")
	})
})
