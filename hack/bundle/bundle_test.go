package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	"github.com/operator-framework/api/pkg/validation/errors"
	interfaces "github.com/operator-framework/api/pkg/validation/interfaces"
	"sigs.k8s.io/yaml"
)

const root = "../.."

// TestBundleIsUpToDate regenerates the bundle from config/ and compares it
// with the committed bundle/: they must not drift.
func TestBundleIsUpToDate(t *testing.T) {
	want, err := Generate(root, bundleVersion(t), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "bundle")
	got := map[string][]byte{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		got[rel], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range want {
		if !bytes.Equal(got[name], content) {
			t.Errorf("bundle/%s is stale or missing: run `make bundle` and commit", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("bundle/%s is not generated any more: run `make bundle` and commit", name)
		}
	}
}

// TestBundleValidates runs operator-framework's validators on the committed bundle.
func TestBundleValidates(t *testing.T) {
	bundle, err := manifests.GetBundleFromDir(filepath.Join(root, "bundle", "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	validators := interfaces.Validators{
		validation.ClusterServiceVersionValidator,
		validation.CustomResourceDefinitionValidator,
		validation.BundleValidator,
		validation.OperatorHubV2Validator,
		validation.StandardCategoriesValidator,
		validation.StandardCapabilitiesValidator,
		validation.ObjectValidator,
		validation.GoodPracticesValidator,
		validation.AlphaDeprecatedAPIsValidator,
	}
	objs := append(bundle.ObjectsToValidate(), map[string]string{"k8s-version": "1.37"})
	results := validators.Validate(objs...)
	if len(results) == 0 {
		t.Fatal("the validators returned no results: nothing was validated")
	}
	for _, r := range results {
		for _, e := range r.Errors {
			t.Errorf("%s: %v", r.Name, e)
		}
		for _, w := range r.Warnings {
			if w.Level == errors.LevelWarn {
				t.Logf("warning: %s: %v", r.Name, w)
			}
		}
	}
}

// bundleVersion is the version of the committed bundle (make bundle VERSION=...).
func bundleVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "bundle", "manifests", packageName+".clusterserviceversion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "  version: "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no spec.version in the committed CSV")
	return ""
}

// TestValidatorsCatchABrokenBundle shows the validators used above do fail:
// a CSV that owns a CRD the bundle lacks is an error.
func TestValidatorsCatchABrokenBundle(t *testing.T) {
	files, err := Generate(root, "0.1.0", "")
	if err != nil {
		t.Fatal(err)
	}
	delete(files, "manifests/podidentitybindings.iam.podidentity.io.yaml")
	dir := t.TempDir()
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	bundle, err := manifests.GetBundleFromDir(filepath.Join(dir, "manifests"))
	if err != nil {
		return // refusing to load is also a failure we want
	}
	errs := 0
	for _, r := range validation.DefaultBundleValidators.Validate(bundle.ObjectsToValidate()...) {
		errs += len(r.Errors)
	}
	if errs == 0 {
		t.Error("a bundle missing its owned CRD passed validation")
	}
}

// TestRelease: `make release VERSION=...` pins the image everywhere to that
// version and the CSV carries the same version.
func TestRelease(t *testing.T) {
	const version, image = "9.9.9", "ghcr.io/podidentity/podidentity-operator:v9.9.9"
	files, err := Generate(root, version, image)
	if err != nil {
		t.Fatal(err)
	}
	csv := string(files["manifests/podidentity-operator.clusterserviceversion.yaml"])
	for _, want := range []string{"version: " + version, "containerImage: " + image, "image: " + image, "name: podidentity-operator.v" + version} {
		if !strings.Contains(csv, want) {
			t.Errorf("the CSV lacks %q", want)
		}
	}
	for _, want := range []string{`features.operators.openshift.io/token-auth-aws: "false"`, `olm.skipRange: '>=0.0.0 <` + version + `'`} {
		if !strings.Contains(csv, want) {
			t.Errorf("the CSV lacks %s", want)
		}
	}
	pdb := string(files["manifests/podidentity-controller-manager_policy_v1_poddisruptionbudget.yaml"])
	for _, want := range []string{"kind: PodDisruptionBudget", "minAvailable: 1", "control-plane: controller-manager"} {
		if !strings.Contains(pdb, want) {
			t.Errorf("the bundle's PodDisruptionBudget lacks %q:\n%s", want, pdb)
		}
	}
	if !strings.Contains(csv, "control-plane: controller-manager") {
		t.Error("the PodDisruptionBudget's selector does not select the CSV's pods")
	}
	installer, err := Installer(root, image)
	if err != nil {
		t.Fatal(err)
	}
	text := string(installer)
	if strings.Contains(text, "--cluster-name=") || strings.Contains(text, "CHANGE-ME") || strings.Contains(csv, "CHANGE-ME") {
		t.Error("the installer carries a placeholder cluster name; it is set with PODIDENTITY_CLUSTER_NAME")
	}
	if strings.Contains(text, "eks.amazonaws.com/role-arn: ") {
		t.Error("the installer carries a placeholder role; the README annotates the ServiceAccount")
	}
	if strings.Contains(text, ":latest") || strings.Contains(csv, ":latest") {
		t.Error("a release still refers to :latest")
	}
	kinds := map[string]int{}
	for _, doc := range strings.Split(text, "\n---\n") {
		var o struct {
			Kind string `json:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct{ Image string } `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		if o.Kind == "Namespace" && len(kinds) > 0 {
			t.Errorf("the Namespace comes after %v: `kubectl apply -f` fails on the objects in it", kinds)
		}
		kinds[o.Kind]++
		if o.Kind == "Deployment" && o.Spec.Template.Spec.Containers[0].Image != image {
			t.Errorf("installer image = %q", o.Spec.Template.Spec.Containers[0].Image)
		}
	}
	for kind, n := range map[string]int{"CustomResourceDefinition": 3, "Deployment": 1, "ValidatingWebhookConfiguration": 1, "PodDisruptionBudget": 1, "Namespace": 1} {
		if kinds[kind] != n {
			t.Errorf("installer has %d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
		}
	}
}
