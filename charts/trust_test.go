package charts_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// trustedServiceAccount is the subject config/iam/operator-trust-policy.json
// trusts, "system:serviceaccount:<namespace>:<name>".
func trustedServiceAccount(t *testing.T, root string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "config", "iam", "operator-trust-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Condition map[string]map[string]string
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, st := range doc.Statement {
		for k, v := range st.Condition["StringEquals"] {
			if strings.HasSuffix(k, ":sub") {
				return v
			}
		}
	}
	t.Fatal("the operator's trust policy names no subject")
	return ""
}

// Issue 18 (first part): the first Helm install on EKS crash-looped because
// the chart named its ServiceAccount after the release
// (podidentity-operator-controller-manager) while the documented trust names
// podidentity-system:podidentity-controller-manager. Every install path the
// README documents, rendered with the README's own release name and
// namespace, must create the ServiceAccount the shipped trust policy trusts.
func TestEveryInstallPathCreatesTheTrustedServiceAccount(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want := trustedServiceAccount(t, root)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), want) {
		t.Errorf("the README does not name the trusted ServiceAccount %s", want)
	}

	// Helm, as the README installs it (every documented release name and namespace).
	cmds := regexp.MustCompile(`helm install (\S+) (?:charts/podidentity-operator|dist/\S+\.tgz) -n (\S+)`).FindAllStringSubmatch(string(readme), -1)
	if len(cmds) == 0 {
		t.Fatal("the README documents no helm install")
	}
	for _, c := range cmds {
		release, ns := c[1], c[2]
		out, err := helm(t, "template", release, chartDir, "--namespace", ns, "--set", "clusterName=prod")
		if err != nil {
			t.Fatalf("%s: %v", c[0], err)
		}
		objs, err := parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if got := serviceAccounts(objs); len(got) != 1 || got[0] != want {
			t.Errorf("%s creates ServiceAccounts %v; the trust policy trusts %s", c[0], got, want)
		}
	}

	// Argo CD, as docs/gitops.md's Helm Application renders the chart: the
	// release is the Application's name, the namespace its destination's,
	// the values its valuesObject.
	gitops, err := os.ReadFile(filepath.Join(root, "docs", "gitops.md"))
	if err != nil {
		t.Fatal(err)
	}
	app := argoHelmApplication(t, string(gitops))
	out, err := helm(t, append([]string{"template", app.release(), filepath.Join(root, app.Spec.Source.Path),
		"--namespace", app.Spec.Destination.Namespace}, app.valuesFile(t)...)...)
	if err != nil {
		t.Fatalf("docs/gitops.md's Application (source.path %s): %v", app.Spec.Source.Path, err)
	}
	argoObjs, err := parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := serviceAccounts(argoObjs); len(got) != 1 || got[0] != want {
		t.Errorf("docs/gitops.md's Application creates ServiceAccounts %v; the trust policy trusts %s", got, want)
	}
	for _, o := range argoObjs {
		if o.GetKind() == "ServiceAccount" && !strings.HasPrefix(o.GetAnnotations()["eks.amazonaws.com/role-arn"], "arn:aws:iam::") {
			t.Errorf("docs/gitops.md's Application: the ServiceAccount has no role-arn annotation: %v", o.GetAnnotations())
		}
	}

	// kustomize: config/default (also what dist/install.yaml is built from).
	objs, err := testenv.Kustomize("default")
	if err != nil {
		t.Fatal(err)
	}
	if got := serviceAccounts(objs); len(got) != 1 || got[0] != want {
		t.Errorf("config/default creates ServiceAccounts %v; the trust policy trusts %s", got, want)
	}

	// OLM: the CSV's deployment runs as the trusted name (OLM picks the
	// namespace; the README's OLM section names the ServiceAccount).
	raw, err := os.ReadFile(filepath.Join(root, "bundle", "manifests", "podidentity-operator.clusterserviceversion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var csv struct {
		Spec struct {
			Install struct {
				Spec struct {
					Deployments []struct {
						Spec struct {
							Template struct {
								Spec struct {
									ServiceAccountName string `json:"serviceAccountName"`
								} `json:"spec"`
							} `json:"template"`
						} `json:"spec"`
					} `json:"deployments"`
				} `json:"spec"`
			} `json:"install"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &csv); err != nil {
		t.Fatal(err)
	}
	name := want[strings.LastIndex(want, ":")+1:]
	for _, d := range csv.Spec.Install.Spec.Deployments {
		if got := d.Spec.Template.Spec.ServiceAccountName; got != name {
			t.Errorf("the OLM bundle's deployment runs as %s; the trust policy trusts %s", got, name)
		}
	}
}

// argoApplication is what an Argo CD Application with a Helm source says
// about rendering it.
type argoApplication struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Source struct {
			RepoURL string `json:"repoURL"`
			Path    string `json:"path"`
			Helm    struct {
				ReleaseName  string         `json:"releaseName"`
				ValuesObject map[string]any `json:"valuesObject"`
			} `json:"helm"`
		} `json:"source"`
		Destination struct {
			Namespace string `json:"namespace"`
		} `json:"destination"`
	} `json:"spec"`
}

// argoHelmApplication is docs/gitops.md's Application for the chart; the
// test fails when the docs no longer have it or it names another source.
func argoHelmApplication(t *testing.T, doc string) argoApplication {
	t.Helper()
	block := testenv.FencedBlock(doc, "yaml", "# Argo CD Application: the Helm chart from this repository")
	var app argoApplication
	if err := yaml.Unmarshal([]byte(block), &app); err != nil || block == "" {
		t.Fatalf("docs/gitops.md: no Helm Application (%v)", err)
	}
	if app.Spec.Source.Path != "charts/podidentity-operator" || app.Spec.Source.RepoURL != "https://github.com/podidentity/podidentity-operator" {
		t.Errorf("docs/gitops.md's Application renders %s at %s, not this repository's chart", app.Spec.Source.RepoURL, app.Spec.Source.Path)
	}
	return app
}

// release is the Helm release Argo CD renders: source.helm.releaseName,
// else the Application's name.
func (a argoApplication) release() string {
	if a.Spec.Source.Helm.ReleaseName != "" {
		return a.Spec.Source.Helm.ReleaseName
	}
	return a.Metadata.Name
}

// valuesFile writes valuesObject to a file, as helm's --values flag.
func (a argoApplication) valuesFile(t *testing.T) []string {
	t.Helper()
	raw, err := yaml.Marshal(a.Spec.Source.Helm.ValuesObject)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--values", path}
}

func serviceAccounts(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if o.GetKind() == "ServiceAccount" {
			out = append(out, "system:serviceaccount:"+o.GetNamespace()+":"+o.GetName())
		}
	}
	return out
}

// Issue 18 (docs that agree with the code): the minimum Kubernetes version
// the README states is the OLM bundle's minKubeVersion.
func TestMinimumKubernetesVersionAgrees(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile(filepath.Join(root, "bundle", "manifests", "podidentity-operator.clusterserviceversion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := regexp.MustCompile(`needs Kubernetes (\d+\.\d+) or later`).FindSubmatch(readme)
	bundle := regexp.MustCompile(`minKubeVersion: (\d+\.\d+)\.\d+`).FindSubmatch(csv)
	if doc == nil || bundle == nil || string(doc[1]) != string(bundle[1]) {
		t.Errorf("README says %q, the bundle %q", doc, bundle)
	}
}

// Every runbook_url of the shipped alerts points at a heading the README has.
func TestRunbookLinksResolve(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, h := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(readme), -1) {
		a := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(h[1]), " ", "-"))
		anchors[regexp.MustCompile(`[^a-z0-9_-]`).ReplaceAllString(a, "")] = true
	}
	links := regexp.MustCompile(`runbook_url: "[^"#]*README\.md#([^"]+)"`).FindAllStringSubmatch(string(rules), -1)
	if len(links) == 0 {
		t.Fatal("no runbook_url in the shipped alerts")
	}
	for _, l := range links {
		if !anchors[l[1]] {
			t.Errorf("runbook_url #%s names no README heading", l[1])
		}
	}
}

// The chart's NetworkPolicy takes its peers from the values the README names.
func TestNetworkPolicyPeers(t *testing.T) {
	out, err := helm(t, "template", "podidentity-operator", chartDir, "--namespace", "podidentity-system", "--set", "clusterName=prod",
		"--set", "networkPolicy.enabled=true", "--set", "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24",
		"--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=obs")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(out)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, o := range objs {
		if o.GetKind() != "NetworkPolicy" {
			continue
		}
		found = true
		ingress, _, _ := unstructured.NestedSlice(o.Object, "spec", "ingress")
		if len(ingress) != 3 {
			t.Fatalf("ingress rules: %v", ingress)
		}
		if got := fmt.Sprint(ingress[0]); !strings.Contains(got, "10.0.0.0/24") || !strings.Contains(got, "9443") {
			t.Errorf("webhook rule: %s", got)
		}
		if got := fmt.Sprint(ingress[1]); !strings.Contains(got, "team:obs") || !strings.Contains(got, "8443") {
			t.Errorf("metrics rule: %s", got)
		}
	}
	if !found {
		t.Error("networkPolicy.enabled renders no NetworkPolicy")
	}
}
