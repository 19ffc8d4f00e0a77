package charts_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// TestInstallUpgradeUninstall drives a real helm install, upgrade and
// uninstall against an API server (envtest, which runs no pods), and reads
// the result back through the Kubernetes API: the objects exist, the CRDs
// are established, a binding survives an uninstall with crds.keep, the same
// release installs again over its kept CRDs, and crds.keep=false removes
// them.
func TestInstallUpgradeUninstall(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run through `make test`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	start := time.Now()
	// step logs a step with the time since the test began (go test -v, or
	// on failure), which says where a slow run spent it.
	step := func(what string) { t.Helper(); t.Logf("%.1fs: %s", time.Since(start).Seconds(), what) }
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if _, err := testenv.AdminKubeconfig(env, "helm", kubeconfigPath); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = apiextensionsv1.AddToScheme(scheme)
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ns, release = "podidentity-system", "podidentity-operator"
	run := func(args ...string) string {
		t.Helper()
		out, err := helm(t, append(args, "--kubeconfig", kubeconfigPath)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	installed := func() []*unstructured.Unstructured {
		t.Helper()
		objs, err := parse(run("get", "manifest", release, "-n", ns))
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	// exist reads every object back through the API server.
	exist := func(objs []*unstructured.Unstructured) {
		t.Helper()
		for _, o := range objs {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(o.GroupVersionKind())
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
				t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	kinds := func(objs []*unstructured.Unstructured) map[string]int {
		m := map[string]int{}
		for _, o := range objs {
			m[o.GetKind()]++
		}
		return m
	}
	crdNames := []string{"podidentitybindings.iam.podidentity.io", "podidentityguardrails.iam.podidentity.io", "podidentityaccounts.iam.podidentity.io"}
	established := func() {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, "the CRDs are established", func() error {
			for _, name := range crdNames {
				crd := &apiextensionsv1.CustomResourceDefinition{}
				if err := k8s.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
					return err
				}
				ok := false
				for _, c := range crd.Status.Conditions {
					ok = ok || c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
				}
				if !ok {
					return fmt.Errorf("CRD %s not established", name)
				}
			}
			return nil
		})
	}
	// crdsGone waits for the CRDs to be deleted. The API server's CRD
	// finalizer sometimes takes minutes on CRDs deleted soon after they
	// were recreated under the same names (291 s seen once), so it waits
	// up to 6 minutes.
	crdsGone := func(what string) {
		t.Helper()
		testenv.Eventually(t, 6*time.Minute, what, func() error {
			for _, name := range crdNames {
				err := k8s.Get(ctx, client.ObjectKey{Name: name}, &apiextensionsv1.CustomResourceDefinition{})
				if !apierrors.IsNotFound(err) {
					return fmt.Errorf("CRD %s still there (%v)", name, err)
				}
			}
			return nil
		})
	}

	// readmeCommand starts the README's inline command that starts with
	// prefix, as written but for values (a placeholder -> a user's), with
	// envtest's kubectl on PATH; done receives how it ended.
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readmeCommand := func(prefix string, values map[string]string) (cmd *exec.Cmd, out *bytes.Buffer, done chan error) {
		t.Helper()
		m := regexp.MustCompile("`(" + regexp.QuoteMeta(prefix) + "[^`]+)`").FindSubmatch(readme)
		if m == nil {
			t.Fatalf("the README has no `%s ...`", prefix)
		}
		command := strings.Join(strings.Fields(string(m[1])), " ")
		for from, to := range values {
			if !strings.Contains(command, from) {
				t.Fatalf("the README's %q no longer has %q", command, from)
			}
			command = strings.ReplaceAll(command, from, to)
		}
		cmd, out, done = exec.Command("bash", "-c", command), &bytes.Buffer{}, make(chan error, 1)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath, "PATH="+os.Getenv("KUBEBUILDER_ASSETS")+":"+os.Getenv("PATH"))
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		return cmd, out, done
	}

	step("install")
	run("install", release, chartDir, "-n", ns, "--create-namespace", "--set", "clusterName=envtest",
		"--set", `serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:aws:iam::123456789012:role/podidentity-operator`)
	objs := installed()
	if k := kinds(objs); k["CustomResourceDefinition"] != 3 || k["Deployment"] != 1 || k["ValidatingWebhookConfiguration"] != 0 {
		t.Fatalf("installed %v", k)
	}
	exist(objs)
	established()
	sa := &unstructured.Unstructured{}
	sa.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"})
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "podidentity-controller-manager"}, sa); err != nil {
		t.Fatal(err)
	}
	if sa.GetAnnotations()["eks.amazonaws.com/role-arn"] != "arn:aws:iam::123456789012:role/podidentity-operator" {
		t.Errorf("ServiceAccount annotations %v", sa.GetAnnotations())
	}

	step("the README's Secret of static credentials is the one operatorCredentials.secretName names")
	_, out, done := readmeCommand("kubectl -n podidentity-system create secret generic", map[string]string{
		"AWS_ACCESS_KEY_ID=...": "AWS_ACCESS_KEY_ID=AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY=...": "AWS_SECRET_ACCESS_KEY=example-secret"})
	if err := <-done; err != nil {
		t.Fatalf("kubectl create secret: %v\n%s", err, out)
	}
	secret := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "podidentity-aws"}, secret); err != nil {
		t.Fatal(err)
	}
	if string(secret.Data["AWS_ACCESS_KEY_ID"]) != "AKIAEXAMPLE" || string(secret.Data["AWS_SECRET_ACCESS_KEY"]) != "example-secret" || len(secret.Data) != 2 {
		t.Errorf("the Secret holds %v; want the two variables the SDK reads", maps.Keys(secret.Data))
	}

	step("a binding, created while the chart is installed")
	binding := sampleBinding(t)
	if err := k8s.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}

	step("upgrade: the webhook, and a ServiceMonitor on a cluster without the Prometheus Operator")
	run("upgrade", release, chartDir, "-n", ns, "--reuse-values", "--set", "webhook.enabled=true",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true")
	objs = installed()
	if k := kinds(objs); k["ValidatingWebhookConfiguration"] != 1 || k["PodDisruptionBudget"] != 1 || k["ServiceMonitor"] != 0 {
		t.Fatalf("after the upgrade: %v", k)
	}
	exist(objs)

	step("upgrade once the Prometheus Operator's CRDs are there")
	if err := testenv.InstallPrerequisiteCRDs(cfg); err != nil {
		t.Fatal(err)
	}
	run("upgrade", release, chartDir, "-n", ns, "--reuse-values")
	objs = installed()
	if k := kinds(objs); k["ServiceMonitor"] != 1 || k["PrometheusRule"] != 1 {
		t.Fatalf("after the second upgrade: %v", k)
	}
	exist(objs)

	step("uninstall: the operator's objects go, the CRDs and the binding stay (crds.keep)")
	run("uninstall", release, "-n", ns)
	testenv.Eventually(t, 30*time.Second, "helm uninstall removes the operator's objects", func() error {
		for _, o := range objs {
			if o.GetKind() == "CustomResourceDefinition" {
				continue
			}
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(o.GroupVersionKind())
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), got); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%s %s still there (%v)", o.GetKind(), o.GetName(), err)
			}
		}
		return nil
	})
	established()
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(binding), binding.DeepCopy()); err != nil {
		t.Fatalf("the binding did not survive the uninstall: %v", err)
	}

	step("the same release installs again over its kept CRDs; with crds.keep=false an uninstall removes them")
	run("install", release, chartDir, "-n", ns, "--set", "clusterName=envtest", "--set", "crds.keep=false")
	exist(installed())
	run("uninstall", release, "-n", ns)
	crdsGone("helm uninstall with crds.keep=false removes the CRDs")

	step("with kept CRDs, the README's uninstall command deletes them all")
	run("install", release, chartDir, "-n", ns, "--set", "clusterName=envtest")
	run("uninstall", release, "-n", ns)
	established()
	// What it deletes is read back through the API server (crdsGone);
	// kubectl waits for the same deletions, and is stopped if it has not
	// seen them a few seconds after every CRD is gone.
	cmd, out, done := readmeCommand("kubectl delete crd", nil)
	crdsGone("the README's kubectl delete crd removes every CRD the chart installs")
	step("every CRD is gone")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("kubectl delete crd: %v\n%s", err, out)
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Logf("kubectl was still waiting for the deletion it asked for: %s", out)
	}
}

// sampleBinding is config/samples' first binding in a new namespace.
func sampleBinding(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "config", "samples", "iam_v1alpha1_podidentitybinding.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &b.Object); err != nil {
		t.Fatal(err)
	}
	b.SetNamespace("default")
	return b
}
