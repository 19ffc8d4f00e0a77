// Package charts_test tests the Helm chart with Helm itself (HELM, built by
// hack/helm.sh): lint, a matrix of renderings, equivalence with config/, the
// values it refuses, and install, upgrade and uninstall against a real API
// server (envtest).
package charts_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/cmd/operator"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

const (
	chartDir = "podidentity-operator"
	// monitoringAPIs makes helm template render as on a cluster with the
	// Prometheus Operator.
	monitoringAPIs = "--api-versions=monitoring.coreos.com/v1/ServiceMonitor,monitoring.coreos.com/v1/PrometheusRule"
)

func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		t.Fatal("HELM is not set: run through `make test`, or export HELM=$(hack/helm.sh)")
	}
	return h
}

// helm runs Helm in this directory and returns its standard output, or an
// error carrying its standard error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// render is helm template with the given flags, parsed.
func render(t *testing.T, flags ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, append([]string{"template", "podidentity", chartDir, "--namespace", "podidentity-system"}, flags...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func parse(manifests string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// variant is one set of values and the config/ components it corresponds
// to.
type variant struct {
	name       string
	components []string
	flags      []string
}

// variants maps every combination of config/default's components to chart
// values.
func variants() []variant {
	var out []variant
	for _, combo := range testenv.ComponentCombinations() {
		v := variant{name: "default", components: combo}
		for _, c := range combo {
			v.name += "+" + strings.TrimPrefix(c, "components/")
			switch c {
			case "components/webhook-self-managed":
				v.flags = append(v.flags, "--set", "webhook.enabled=true", "--set", "webhook.certificates=selfManaged")
			case "components/webhook-cert-manager":
				v.flags = append(v.flags, "--set", "webhook.enabled=true", "--set", "webhook.certificates=certManager")
			case "components/pod-identity-webhook":
				v.flags = append(v.flags, "--set", "podIdentityWebhook.enabled=true")
			case "components/prometheus":
				v.flags = append(v.flags, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true", monitoringAPIs)
			case "components/pod-restarts":
				v.flags = append(v.flags, "--set", "podRestarts.enabled=true")
			case "components/metrics-cert-manager":
				v.flags = append(v.flags, "--set", "metrics.certManager.enabled=true")
			case "components/network-policy":
				v.flags = append(v.flags, "--set", "networkPolicy.enabled=true")
			case "components/grafana-dashboard":
				v.flags = append(v.flags, "--set", "grafana.dashboard.enabled=true")
			default:
				panic("no chart values for " + c)
			}
		}
		out = append(out, v)
	}
	// The NetworkPolicy and the dashboard combine with everything and change
	// nothing else: one variant with them (and every other component) rather
	// than doubling the matrix twice.
	all := out[len(out)-1]
	all.name += "+network-policy+grafana-dashboard"
	all.components = append(append([]string(nil), all.components...), "components/network-policy", "components/grafana-dashboard")
	all.flags = append(append([]string(nil), all.flags...), "--set", "networkPolicy.enabled=true", "--set", "grafana.dashboard.enabled=true")
	return append(out, all)
}

func TestLint(t *testing.T) {
	for _, v := range append(variants(), variant{name: "crds not installed", flags: []string{"--set", "crds.install=false"}}) {
		args := append([]string{"lint", "--strict", chartDir, "--set", "clusterName=prod"}, v.flags...)
		// helm lint takes no --api-versions.
		args = slices.DeleteFunc(args, func(s string) bool { return s == monitoringAPIs })
		if out, err := helm(t, args...); err != nil {
			t.Errorf("%s: %v\n%s", v.name, err, out)
		}
	}
}

// TestMatchesConfig renders the chart with the values that correspond to
// each combination of config/default and its components, named as
// config/default names things (fullnameOverride=podidentity), and compares
// every object with kustomize's: same objects, same rules, webhooks, CRDs,
// pod spec, and the same operator configuration. The chart may only add
// labels and annotations (Helm's, keep on CRDs) and narrow selectors to its
// release.
func TestMatchesConfig(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			want, err := testenv.Kustomize("default", v.components...)
			if err != nil {
				t.Fatal(err)
			}
			var sa map[string]string
			for _, o := range want {
				if o.GetKind() == "ServiceAccount" && o.GetName() == "podidentity-controller-manager" {
					sa = o.GetAnnotations()
				}
			}
			flags := append([]string{"--set", "fullnameOverride=podidentity", "--set", "clusterName=prod"}, v.flags...)
			for k, val := range sa {
				flags = append(flags, "--set", "serviceAccount.annotations."+strings.ReplaceAll(k, ".", `\.`)+"="+val)
			}
			got := render(t, flags...)

			index := func(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
				m := map[string]*unstructured.Unstructured{}
				for _, o := range objs {
					if o.GetKind() == "Namespace" { // Helm: --create-namespace
						continue
					}
					m[o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName()] = o
				}
				return m
			}
			wantIdx, gotIdx := index(want), index(got)
			if !reflect.DeepEqual(keys(wantIdx), keys(gotIdx)) {
				t.Fatalf("objects differ:\nconfig/: %v\nchart:   %v", keys(wantIdx), keys(gotIdx))
			}
			for id, w := range wantIdx {
				g := gotIdx[id]
				if w.GetKind() == "Deployment" {
					w, g = compareOperatorConfig(t, w, g)
				}
				for _, d := range diff(w.Object, g.Object, "") {
					t.Errorf("%s: %s", id, d)
				}
			}
		})
	}
}

// compareOperatorConfig checks that both Deployments configure the operator
// the same way, as the binary reads its flags and variables, and then drops
// args and env from copies of both for the rest of the comparison: the
// chart passes settings as flags, config/ as variables and defaults.
func compareOperatorConfig(t *testing.T, want, got *unstructured.Unstructured) (*unstructured.Unstructured, *unstructured.Unstructured) {
	t.Helper()
	want, got = want.DeepCopy(), got.DeepCopy()
	setEnv(want, operator.EnvPrefix+"CLUSTER_NAME", "prod")
	wantOpts, err := operator.OptionsFromDeployment(want)
	if err != nil {
		t.Fatalf("config/: %v", err)
	}
	gotOpts, err := operator.OptionsFromDeployment(got)
	if err != nil {
		t.Fatalf("chart: %v", err)
	}
	if !reflect.DeepEqual(wantOpts, gotOpts) {
		t.Errorf("the operator's configuration differs:\nconfig/: %+v\nchart:   %+v", wantOpts, gotOpts)
	}
	wantEnv, gotEnv := otherEnv(want), otherEnv(got)
	if !reflect.DeepEqual(wantEnv, gotEnv) {
		t.Errorf("environment differs: config/ %v, chart %v", wantEnv, gotEnv)
	}
	for _, o := range []*unstructured.Unstructured{want, got} {
		c := container(o)
		delete(c, "args")
		delete(c, "env")
		setContainer(o, c)
	}
	return want, got
}

func container(o *unstructured.Unstructured) map[string]any {
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	return cs[0].(map[string]any)
}

func setContainer(o *unstructured.Unstructured, c map[string]any) {
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	cs[0] = c
	_ = unstructured.SetNestedSlice(o.Object, cs, "spec", "template", "spec", "containers")
}

func setEnv(o *unstructured.Unstructured, name, value string) {
	c := container(o)
	env, _ := c["env"].([]any)
	for _, e := range env {
		if e.(map[string]any)["name"] == name {
			e.(map[string]any)["value"] = value
		}
	}
	setContainer(o, c)
}

// otherEnv is the container's environment without the operator's flag
// variables.
func otherEnv(o *unstructured.Unstructured) map[string]any {
	m := map[string]any{}
	env, _ := container(o)["env"].([]any)
	for _, e := range env {
		name := e.(map[string]any)["name"].(string)
		if !strings.HasPrefix(name, operator.EnvPrefix) {
			m[name] = e.(map[string]any)["value"]
		}
	}
	return m
}

// diff compares config/'s object with the chart's. Under labels,
// annotations, matchLabels and a Service's selector the chart may have more
// keys; everywhere else both must be equal.
func diff(want, got any, path string) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: config/ has %v, chart %v", path, want, got)}
		}
		superset := strings.HasSuffix(path, ".labels") || strings.HasSuffix(path, ".annotations") ||
			strings.HasSuffix(path, ".matchLabels") || path == ".spec.selector" && allStrings(w)
		var out []string
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing in the chart (config/ has %v)", path, k, wv))
				continue
			}
			out = append(out, diff(wv, gv, path+"."+k)...)
		}
		if !superset {
			for k, gv := range g {
				if _, ok := w[k]; !ok && k != "labels" && k != "annotations" {
					out = append(out, fmt.Sprintf("%s.%s: only in the chart (%v)", path, k, gv))
				}
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: config/ has %v, chart %v", path, want, got)}
		}
		var out []string
		for i := range w {
			out = append(out, diff(w[i], g[i], fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return []string{fmt.Sprintf("%s: config/ has %v, chart %v", path, want, got)}
		}
		return nil
	}
}

func allStrings(m map[string]any) bool {
	for _, v := range m {
		if _, ok := v.(string); !ok {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestRenderingMatrix renders the chart across values a user sets and
// checks what must hold for each: the operator accepts its configuration,
// every name it is told matches an object the chart creates, selectors
// select the operator's pods, RBAC binds the ServiceAccount the pods run
// as, the image is pinned, and everything namespaced lands in the release
// namespace.
func TestRenderingMatrix(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chart, &meta); err != nil {
		t.Fatal(err)
	}
	cases := append(variants(),
		variant{name: "release name without the chart's", flags: []string{"--set", "webhook.enabled=true", "--set", "podIdentityWebhook.enabled=true"}},
		variant{name: "monitoring enabled on a cluster without the Prometheus Operator", flags: []string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true"}},
		variant{name: "no leader election, one replica, no PDB", flags: []string{"--set", "leaderElection.enabled=false", "--set", "replicaCount=1", "--set", "webhook.enabled=true", "--set", "podDisruptionBudget.enabled=false"}},
		variant{name: "existing ServiceAccount", flags: []string{"--set", "serviceAccount.create=false", "--set", "serviceAccount.name=my-operator"}},
		variant{name: "CRDs managed elsewhere", flags: []string{"--set", "crds.install=false"}},
		variant{name: "CRDs not kept", flags: []string{"--set", "crds.keep=false"}},
		variant{name: "every setting", flags: []string{"--set", "permissionsBoundaryArn=arn:aws:iam::111122223333:policy/boundary",
			"--set", "rolePath=/teams/", "--set", "roleNamePrefix=pi-", "--set", "syncPeriod=5m", "--set", "builtinGuardrails=false",
			"--set", "awsRegion=eu-west-1", "--set", "extraArgs={--iam-read-qps=20}", "--set", "image.tag=v9.9.9",
			"--set", "nodeSelector.kubernetes\\.io/os=linux", "--set", "tolerations[0].operator=Exists", "--set", "priorityClassName=system-cluster-critical",
			"--set", "webhook.enabled=true", "--set", "webhook.port=10250", "--set", "podIdentityWebhook.enabled=true", "--set", "podIdentityWebhook.region=eu-west-1"}},
	)
	for _, v := range cases {
		t.Run(v.name, func(t *testing.T) {
			release := "podidentity-operator"
			if v.name == "release name without the chart's" {
				release = "team-irsa"
			}
			out, err := helm(t, append([]string{"template", release, chartDir, "--namespace", "iam-system", "--set", "clusterName=prod"}, v.flags...)...)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := parse(out)
			if err != nil {
				t.Fatal(err)
			}
			checkRendering(t, objs, meta.AppVersion, v)
		})
	}
}

func checkRendering(t *testing.T, objs []*unstructured.Unstructured, appVersion string, v variant) {
	t.Helper()
	byKind := map[string][]*unstructured.Unstructured{}
	names := map[string]bool{}
	for _, o := range objs {
		byKind[o.GetKind()] = append(byKind[o.GetKind()], o)
		names[o.GetKind()+"/"+o.GetName()] = true
		clusterScoped := slices.Contains([]string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
			"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}, o.GetKind())
		if clusterScoped != (o.GetNamespace() == "") || !clusterScoped && o.GetNamespace() != "iam-system" {
			t.Errorf("%s %s is in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		if len(o.GetName()) > 63 && o.GetKind() != "CustomResourceDefinition" {
			t.Errorf("%s %s: name longer than 63 characters", o.GetKind(), o.GetName())
		}
	}
	flag := func(f string) bool { return slices.Contains(v.flags, f) }
	// cert-manager's CA injector is named only where cert-manager issues
	// the certificate; with the self-managed one the operator writes it.
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		for _, o := range byKind[kind] {
			_, injected := o.GetAnnotations()["cert-manager.io/inject-ca-from"]
			if injected != flag("webhook.certificates=certManager") {
				t.Errorf("%s %s: annotations %v with flags %v", kind, o.GetName(), o.GetAnnotations(), v.flags)
			}
		}
	}
	if len(byKind["Deployment"]) != 1 {
		t.Fatalf("%d Deployments", len(byKind["Deployment"]))
	}
	deploy := byKind["Deployment"][0]
	opts, err := operator.OptionsFromDeployment(deploy)
	if err != nil {
		t.Fatalf("the operator would refuse its configuration: %v", err)
	}
	image, _ := container(deploy)["image"].(string)
	wantTag := "v" + appVersion
	if flag("image.tag=v9.9.9") {
		wantTag = "v9.9.9"
	}
	if image != "ghcr.io/podidentity/podidentity-operator:"+wantTag {
		t.Errorf("image %q, want tag %s", image, wantTag)
	}
	podLabels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
	selects := func(what string, sel map[string]string) {
		if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(podLabels)) {
			t.Errorf("%s selector %v does not select the operator's pods %v", what, sel, podLabels)
		}
	}
	sel, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "selector", "matchLabels")
	selects("Deployment", sel)
	podSA, _, _ := unstructured.NestedString(deploy.Object, "spec", "template", "spec", "serviceAccountName")
	if flag("serviceAccount.create=false") {
		if podSA != "my-operator" || len(byKind["ServiceAccount"]) != 0 {
			t.Errorf("pods run as %q; %d ServiceAccounts created", podSA, len(byKind["ServiceAccount"]))
		}
	} else if !names["ServiceAccount/"+podSA] {
		t.Errorf("pods run as %q, which the chart does not create", podSA)
	}
	var webhookCert, metricsCert *unstructured.Unstructured
	for _, c := range byKind["Certificate"] {
		switch secret, _, _ := unstructured.NestedString(c.Object, "spec", "secretName"); secret {
		case opts.WebhookSecretName:
			webhookCert = c
		case "podidentity-operator-metrics-server-cert":
			metricsCert = c
		default:
			t.Errorf("Certificate %s into %s", c.GetName(), secret)
		}
	}
	// The metrics certificate: issued for the metrics Service, mounted
	// where --metrics-cert-path says, and the CA the ServiceMonitor trusts.
	if (metricsCert != nil) != flag("metrics.certManager.enabled=true") {
		t.Errorf("metrics Certificate %v with flags %v", metricsCert != nil, v.flags)
	}
	if metricsCert != nil {
		dns, _, _ := unstructured.NestedStringSlice(metricsCert.Object, "spec", "dnsNames")
		if !slices.Contains(dns, "podidentity-operator-controller-manager-metrics-service.iam-system.svc") || opts.MetricsCertPath == "" {
			t.Errorf("metrics Certificate for %v, --metrics-cert-path %q", dns, opts.MetricsCertPath)
		}
		mounted := false
		mounts, _, _ := unstructured.NestedSlice(container(deploy), "volumeMounts")
		volumes, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
		for _, m := range mounts {
			for _, vol := range volumes {
				secret, _, _ := unstructured.NestedString(vol.(map[string]any), "secret", "secretName")
				mounted = mounted || m.(map[string]any)["mountPath"] == opts.MetricsCertPath && vol.(map[string]any)["name"] == m.(map[string]any)["name"] && secret == "podidentity-operator-metrics-server-cert"
			}
		}
		if !mounted {
			t.Errorf("the metrics certificate's Secret is not mounted at %s", opts.MetricsCertPath)
		}
	}
	for _, sm := range byKind["ServiceMonitor"] {
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		ep := endpoints[0].(map[string]any)
		if _, deprecated := ep["bearerTokenFile"]; deprecated {
			t.Error("the ServiceMonitor uses the deprecated bearerTokenFile")
		}
		cred, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name")
		if !names["Secret/"+cred] {
			t.Errorf("the ServiceMonitor's credentials %q are not a Secret of the chart", cred)
		}
		skip, _, _ := unstructured.NestedBool(ep, "tlsConfig", "insecureSkipVerify")
		ca, _, _ := unstructured.NestedString(ep, "tlsConfig", "ca", "secret", "name")
		if metricsCert != nil && (skip || ca != "podidentity-operator-metrics-server-cert") || metricsCert == nil && !skip {
			t.Errorf("ServiceMonitor tlsConfig %v with a metrics certificate %v", ep["tlsConfig"], metricsCert != nil)
		}
	}
	// The only other ServiceAccount is the one Prometheus scrapes with,
	// bound to the metrics reader role and nothing else.
	const scraperSA = "podidentity-operator-metrics-scraper"
	for _, sa := range byKind["ServiceAccount"] {
		if sa.GetName() != podSA && (sa.GetName() != scraperSA || !flag("metrics.serviceMonitor.enabled=true")) {
			t.Errorf("ServiceAccount %s", sa.GetName())
		}
	}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range byKind[kind] {
			subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
			if b.GetName() == scraperSA+"-rolebinding" {
				ref, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
				if len(subjects) != 1 || subjects[0].(map[string]any)["name"] != scraperSA || ref != "podidentity-operator-metrics-reader" {
					t.Errorf("%s binds %v to %s", b.GetName(), subjects, ref)
				}
				continue
			}
			if len(subjects) != 1 || subjects[0].(map[string]any)["name"] != podSA || subjects[0].(map[string]any)["namespace"] != "iam-system" {
				t.Errorf("%s %s binds %v, not the operator's ServiceAccount", kind, b.GetName(), subjects)
			}
			ref, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
			roleKind, _, _ := unstructured.NestedString(b.Object, "roleRef", "kind")
			if !names[roleKind+"/"+ref] {
				t.Errorf("%s %s refers to %s %s, which the chart does not create", kind, b.GetName(), roleKind, ref)
			}
		}
	}
	// Every name in an RBAC rule's resourceNames is something the operator is
	// told to write, or the PodIdentityBinding CRD, which it only reads
	// (get) to tell a CRD deletion from a binding deletion.
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, r := range byKind[kind] {
			rules, _, _ := unstructured.NestedSlice(r.Object, "rules")
			for _, rule := range rules {
				resourceNames, _ := rule.(map[string]any)["resourceNames"].([]any)
				if res := fmt.Sprint(rule.(map[string]any)["resources"]); res == "[customresourcedefinitions]" {
					if fmt.Sprint(resourceNames) != "[podidentitybindings.iam.podidentity.io]" || fmt.Sprint(rule.(map[string]any)["verbs"]) != "[get]" {
						t.Errorf("%s %s: CRD access other than get on the PodIdentityBinding CRD: %v", kind, r.GetName(), rule)
					}
					continue
				}
				for _, n := range resourceNames {
					if !slices.Contains([]string{opts.WebhookConfigName, opts.WebhookSecretName, opts.MutatingWebhookConfigName}, n.(string)) {
						t.Errorf("%s %s names %v, which the operator never writes", kind, r.GetName(), n)
					}
				}
			}
		}
	}
	if !flag("leaderElection.enabled=false") && !opts.LeaderElect {
		t.Error("no leader election")
	}
	if flag("crds.install=false") != (len(byKind["CustomResourceDefinition"]) == 0) {
		t.Errorf("%d CRDs", len(byKind["CustomResourceDefinition"]))
	}
	for _, crd := range byKind["CustomResourceDefinition"] {
		if keep := crd.GetAnnotations()["helm.sh/resource-policy"] == "keep"; keep == flag("crds.keep=false") {
			t.Errorf("CRD %s: keep annotation %v", crd.GetName(), keep)
		}
	}

	webhook := flag("webhook.enabled=true")
	if opts.EnableWebhooks != webhook {
		t.Errorf("--enable-webhooks %v", opts.EnableWebhooks)
	}
	if webhook {
		svc := findNamed(byKind["Service"], opts.WebhookServiceName)
		vwc := findNamed(byKind["ValidatingWebhookConfiguration"], opts.WebhookConfigName)
		if svc == nil || vwc == nil || opts.WebhookNamespace != "iam-system" {
			t.Fatalf("the operator is told Service %s/%s and configuration %s; the chart creates %v", opts.WebhookNamespace, opts.WebhookServiceName, opts.WebhookConfigName, keys(names))
		}
		svcSel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		selects("webhook Service", svcSel)
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		if ports[0].(map[string]any)["targetPort"] != "webhook" {
			t.Errorf("webhook Service targets %v", ports[0])
		}
		var containerPort any
		for _, p := range container(deploy)["ports"].([]any) {
			if p.(map[string]any)["name"] == "webhook" {
				containerPort = p.(map[string]any)["containerPort"]
			}
		}
		if fmt.Sprint(containerPort) != fmt.Sprint(opts.WebhookPort) {
			t.Errorf("the webhook port is %v, the operator serves %d", containerPort, opts.WebhookPort)
		}
		configs := []*unstructured.Unstructured{vwc}
		if opts.EnablePodIdentityWebhook {
			mwc := findNamed(byKind["MutatingWebhookConfiguration"], opts.MutatingWebhookConfigName)
			if mwc == nil {
				t.Fatalf("no MutatingWebhookConfiguration %s", opts.MutatingWebhookConfigName)
			}
			configs = append(configs, mwc)
		}
		for _, c := range configs {
			hooks, _, _ := unstructured.NestedSlice(c.Object, "webhooks")
			for _, h := range hooks {
				ref := h.(map[string]any)["clientConfig"].(map[string]any)["service"].(map[string]any)
				if ref["name"] != svc.GetName() || ref["namespace"] != svc.GetNamespace() {
					t.Errorf("%s sends to %v", c.GetName(), ref)
				}
			}
			certManager := flag("webhook.certificates=certManager")
			if inject := c.GetAnnotations()["cert-manager.io/inject-ca-from"]; certManager && (webhookCert == nil || inject != "iam-system/"+webhookCert.GetName()) {
				t.Errorf("%s: cert-manager injects from %q", c.GetName(), inject)
			}
		}
		if flag("webhook.certificates=certManager") {
			dns, _, _ := unstructured.NestedStringSlice(webhookCert.Object, "spec", "dnsNames")
			if !slices.Contains(dns, opts.WebhookServiceName+".iam-system.svc") || opts.WebhookCertSelfManaged {
				t.Errorf("Certificate for %v; self-managed %v", dns, opts.WebhookCertSelfManaged)
			}
		} else if !opts.WebhookCertSelfManaged || webhookCert != nil {
			t.Error("the self-managed certificate is not configured")
		}
		if flag("podDisruptionBudget.enabled=false") {
			if len(byKind["PodDisruptionBudget"]) != 0 {
				t.Error("PodDisruptionBudget rendered though disabled")
			}
		} else {
			if len(byKind["PodDisruptionBudget"]) != 1 {
				t.Fatal("the fail-closed webhook has no PodDisruptionBudget")
			}
			pdbSel, _, _ := unstructured.NestedStringMap(byKind["PodDisruptionBudget"][0].Object, "spec", "selector", "matchLabels")
			selects("PodDisruptionBudget", pdbSel)
		}
	} else if len(byKind["ValidatingWebhookConfiguration"])+len(byKind["MutatingWebhookConfiguration"])+len(byKind["PodDisruptionBudget"]) != 0 {
		t.Error("webhook objects without webhook.enabled")
	}
	if opts.EnablePodRestarts != flag("podRestarts.enabled=true") || (findNamed(byKind["ClusterRole"], "podidentity-operator-pod-restarts-role") != nil) != opts.EnablePodRestarts {
		t.Errorf("pod restarts: flag %v, RBAC %v", opts.EnablePodRestarts, findNamed(byKind["ClusterRole"], "podidentity-operator-pod-restarts-role") != nil)
	}
	monitoring := flag(monitoringAPIs)
	if n := len(byKind["ServiceMonitor"]) + len(byKind["PrometheusRule"]); monitoring != (n == 2) || !monitoring && n != 0 {
		t.Errorf("%d monitoring objects (Prometheus Operator served: %v)", n, monitoring)
	}
	for _, m := range byKind["ServiceMonitor"] {
		msel, _, _ := unstructured.NestedStringMap(m.Object, "spec", "selector", "matchLabels")
		var selected []string
		for _, s := range byKind["Service"] {
			if labels.SelectorFromSet(msel).Matches(labels.Set(s.GetLabels())) {
				selected = append(selected, s.GetName())
			}
		}
		if len(selected) != 1 || !strings.HasSuffix(selected[0], "-controller-manager-metrics-service") {
			t.Errorf("the ServiceMonitor selects %v", selected)
		}
	}
	if flag("permissionsBoundaryArn=arn:aws:iam::111122223333:policy/boundary") {
		if opts.PermissionsBoundaryARN == "" || opts.RolePath != "/teams/" || opts.RoleNamePrefix != "pi-" || opts.SyncPeriod.String() != "5m0s" ||
			opts.BuiltinGuardrails || opts.IAMReadQPS != 20 || opts.PodWebhookRegion != "eu-west-1" || opts.WebhookPort != 10250 {
			t.Errorf("settings not passed through: %+v", opts)
		}
		spec, _, _ := unstructured.NestedMap(deploy.Object, "spec", "template", "spec")
		if spec["nodeSelector"] == nil || spec["tolerations"] == nil || spec["priorityClassName"] != "system-cluster-critical" {
			t.Errorf("scheduling settings not passed through: %v", spec)
		}
		if otherEnv(deploy)["AWS_REGION"] != "eu-west-1" {
			t.Errorf("AWS_REGION %v", otherEnv(deploy)["AWS_REGION"])
		}
	}
}

func findNamed(objs []*unstructured.Unstructured, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetName() == name {
			return o
		}
	}
	return nil
}

// TestRefusedValues: bad values fail the rendering with a message that says
// what to set, before anything reaches a cluster.
func TestRefusedValues(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"no cluster name", nil, "clusterName is required: --set clusterName=<this cluster's name>"},
		{"placeholder cluster name", []string{"--set", "clusterName=CHANGE-ME"}, `clusterName "CHANGE-ME" is a placeholder`},
		{"cluster name characters", []string{"--set", "clusterName=a/b"}, "/clusterName"},
		{"unknown certificates", []string{"--set", "clusterName=p", "--set", "webhook.certificates=vault"}, "value must be one of 'selfManaged', 'certManager'"},
		{"pod identity webhook alone", []string{"--set", "clusterName=p", "--set", "podIdentityWebhook.enabled=true"}, "podIdentityWebhook.enabled needs webhook.enabled=true"},
		{"PDB blocking drains", []string{"--set", "clusterName=p", "--set", "webhook.enabled=true", "--set", "replicaCount=1"}, "would block every node drain"},
		{"image latest", []string{"--set", "clusterName=p", "--set", "image.tag=latest"}, "/image/tag"},
		{"typo in a key", []string{"--set", "clustername=p"}, "additional properties 'clustername' not allowed"},
		{"duration", []string{"--set", "clusterName=p", "--set", "syncPeriod=ten minutes"}, "/syncPeriod"},
		{"role path", []string{"--set", "clusterName=p", "--set", "rolePath=teams"}, "/rolePath"},
		{"boundary", []string{"--set", "clusterName=p", "--set", "permissionsBoundaryArn=boundary"}, "/permissionsBoundaryArn"},
		{"service account", []string{"--set", "clusterName=p", "--set", "serviceAccount.create=false"}, "serviceAccount.name is required when serviceAccount.create is false"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := helm(t, append([]string{"template", "podidentity-operator", chartDir}, tt.flags...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestVersions: the chart's appVersion, the image config/ pins and the
// Makefile's VERSION are one version (make release sets all three).
func TestVersions(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ Version, AppVersion string }
	if err := yaml.Unmarshal(chart, &meta); err != nil {
		t.Fatal(err)
	}
	kust, err := os.ReadFile(filepath.Join("..", "config", "manager", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	tag := regexp.MustCompile(`newTag: (\S+)`).FindSubmatch(kust)
	version := regexp.MustCompile(`(?m)^VERSION \?= (\S+)$`).FindSubmatch(makefile)
	if tag == nil || version == nil || meta.Version != meta.AppVersion || string(tag[1]) != "v"+meta.AppVersion || string(version[1]) != meta.AppVersion {
		t.Errorf("versions differ: chart %s (app %s), config/manager image tag %s, Makefile VERSION %s", meta.Version, meta.AppVersion, tag, version)
	}
	changelog, err := os.ReadFile(filepath.Join("..", "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^## ` + regexp.QuoteMeta(meta.AppVersion) + `\b`).Match(changelog) {
		t.Errorf("CHANGELOG.md has no section for %s", meta.AppVersion)
	}
}

// TestPackage: the package `make release` builds carries the version it is
// given, and installs the image of that version.
func TestPackage(t *testing.T) {
	dir := t.TempDir()
	if _, err := helm(t, "package", chartDir, "--version", "9.9.9", "--app-version", "9.9.9", "-d", dir); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(dir, "podidentity-operator-9.9.9.tgz")
	out, err := helm(t, "template", "podidentity-operator", pkg, "--set", "clusterName=prod")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			if image := container(o)["image"]; image != "ghcr.io/podidentity/podidentity-operator:v9.9.9" {
				t.Errorf("the package installs %v", image)
			}
		}
		if o.GetKind() == "CustomResourceDefinition" && o.GetLabels()["app.kubernetes.io/version"] != "9.9.9" {
			t.Errorf("CRD %s labels %v", o.GetName(), o.GetLabels())
		}
	}
	if len(objs) < 10 {
		t.Errorf("the package renders %d objects", len(objs))
	}
}
