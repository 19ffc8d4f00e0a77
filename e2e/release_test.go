package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// TestReleaseArtifactsVerify runs the step of `make release` that makes a
// release verifiable on a directory of artefacts: the CycloneDX bill of
// materials names the operator's modules at the versions go.mod resolves,
// and `sha256sum -c` (what a user runs) accepts SHA256SUMS for every file,
// and refuses a file changed afterwards.
func TestReleaseArtifactsVerify(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	for name, content := range map[string]string{"install.yaml": "kind: Namespace\n", "bundle/manifests/csv.yaml": "kind: ClusterServiceVersion\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dist, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dist, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(filepath.Join(root, "hack", "release-artifacts.sh"), dist, "9.9.9").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	raw, err := os.ReadFile(filepath.Join(dist, "podidentity-operator-9.9.9.cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	var bom struct {
		BOMFormat  string `json:"bomFormat"`
		Metadata   struct{ Component struct{ Name string } }
		Components []struct{ Name, Version, Purl string }
	}
	if err := json.Unmarshal(raw, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.Metadata.Component.Name != "github.com/podidentity/podidentity-operator" {
		t.Fatalf("not the operator's CycloneDX BOM: %s %q", bom.BOMFormat, bom.Metadata.Component.Name)
	}
	versions := map[string]string{}
	for _, c := range bom.Components {
		versions[c.Name] = c.Version
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Version}}", "sigs.k8s.io/controller-runtime", "github.com/aws/aws-sdk-go-v2/service/iam").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, version, _ := strings.Cut(line, " ")
		if versions[path] != version {
			t.Errorf("the BOM lists %s at %q; go.mod resolves %s", path, versions[path], version)
		}
	}

	check := func() error {
		cmd := exec.Command("sha256sum", "-c", "--strict", "SHA256SUMS")
		cmd.Dir = dist
		out, err := cmd.CombinedOutput()
		if err != nil {
			return &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: out}
		}
		return nil
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"install.yaml", "bundle/manifests/csv.yaml", "podidentity-operator-9.9.9.cdx.json"} {
		if !strings.Contains(string(sums), "  "+name+"\n") {
			t.Errorf("SHA256SUMS does not cover %s:\n%s", name, sums)
		}
	}
	if err := check(); err != nil {
		t.Fatalf("sha256sum -c refuses the release: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dist, "install.yaml"), []byte("kind: Namespace\n# changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if check() == nil {
		t.Fatal("sha256sum -c accepts a changed install.yaml")
	}
}

// TestMakeReleaseAsDocumented runs `make release VERSION=x.y.z` as the
// README's "Installing a released version" says, in a copy of the
// checkout (the files git knows, less what it ignores): refused without a
// CHANGELOG section for the version, then, with one, the version set
// everywhere the repository records it, the bundle regenerated, and in
// dist/ the installer with the image pinned to the release, the chart
// package at that version, the bill of materials, and SHA256SUMS that
// `sha256sum -c` accepts.
func TestMakeReleaseAsDocumented(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helmBin := os.Getenv("HELM")
	dir := copyCheckout(t, root)
	makeRelease := func(version string) (string, error) {
		cmd := exec.Command("make", "release", "VERSION="+version)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), notSubMake...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	const version = "9.9.9"
	if out, err := makeRelease(version); err == nil || !strings.Contains(out, "CHANGELOG.md has no section for "+version) {
		t.Fatalf("make release without a CHANGELOG section: %v\n%s", err, tail(out, 2000))
	}
	changelog := filepath.Join(dir, "CHANGELOG.md")
	raw, err := os.ReadFile(changelog)
	if err != nil {
		t.Fatal(err)
	}
	head, rest, _ := strings.Cut(string(raw), "\n## ")
	if err := os.WriteFile(changelog, []byte(head+"\n## "+version+"\n\nA test release.\n\n## "+rest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := makeRelease(version); err != nil {
		t.Fatalf("make release VERSION=%s: %v\n%s", version, err, tail(out, 4000))
	}

	read := func(rel string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for file, want := range map[string]string{
		"Makefile":                               "\nVERSION ?= " + version + "\n",
		"config/manager/kustomization.yaml":      "newTag: v" + version + "\n",
		"charts/podidentity-operator/Chart.yaml": "\nversion: " + version + "\n",
		"dist/install.yaml":                      "image: ghcr.io/podidentity/podidentity-operator:v" + version + "\n",
		"bundle/manifests/podidentity-operator.clusterserviceversion.yaml": "name: podidentity-operator.v" + version + "\n",
	} {
		if !strings.Contains(read(file), want) {
			t.Errorf("%s does not have %q", file, strings.TrimSpace(want))
		}
	}
	if !strings.Contains(read("charts/podidentity-operator/Chart.yaml"), `appVersion: "`+version+`"`) {
		t.Errorf("the chart's appVersion is not %s", version)
	}
	if strings.Contains(read("dist/install.yaml"), ":latest") {
		t.Error("dist/install.yaml names a :latest image")
	}
	chart := filepath.Join(dir, "dist", "podidentity-operator-"+version+".tgz")
	out, err := exec.Command(helmBin, "show", "chart", chart).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\nversion: "+version+"\n") {
		t.Errorf("helm show chart %s: %v\n%s", chart, err, out)
	}
	sums := read("dist/SHA256SUMS")
	for _, name := range []string{"install.yaml", "podidentity-operator-" + version + ".tgz", "podidentity-operator-" + version + ".cdx.json",
		"bundle/manifests/podidentity-operator.clusterserviceversion.yaml"} {
		if !strings.Contains(sums, "  "+name+"\n") {
			t.Errorf("SHA256SUMS does not cover %s", name)
		}
	}
	check := exec.Command("sha256sum", "-c", "--strict", "SHA256SUMS")
	check.Dir = filepath.Join(dir, "dist")
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c refuses the release: %v\n%s", err, out)
	}
}

// notSubMake: variables that make a make run in a test not a sub-make of
// the `make test` the test may run under.
var notSubMake = []string{"MAKEFLAGS=", "MAKELEVEL=", "MFLAGS="}

// copyCheckout copies the files git knows in root (tracked, and untracked
// ones it does not ignore) to a new git repository, with a bin/ that holds
// the tools `make test` provided (helm, controller-gen), where the
// Makefile looks for them.
func copyCheckout(t *testing.T, root string) string {
	t.Helper()
	helmBin := os.Getenv("HELM")
	if helmBin == "" {
		t.Fatal("HELM is not set: run through `make test`")
	}
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		from := filepath.Join(root, rel)
		info, err := os.Lstat(from)
		if err != nil || info.IsDir() {
			continue // deleted in the working tree
		}
		raw, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, raw, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	// A release is made in a git checkout (the bill of materials reads
	// the main module's version from it).
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "copy"}} {
		git := exec.Command("git", args...)
		git.Dir = dir
		if out, err := git.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, from := range map[string]string{"helm-v3.22.0": helmBin, "controller-gen": filepath.Join(root, "bin", "controller-gen")} {
		if _, err := os.Stat(from); err == nil {
			if err := os.Symlink(from, filepath.Join(dir, "bin", name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// TestMakeInstallAsDocumented runs the README's `make install` (CRDs only)
// in a copy of the checkout against an API server, with kubectl on PATH
// as a user has it: every CRD of config/crd/bases is then established.
func TestMakeInstallAsDocumented(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := copyCheckout(t, root)
	c := startCluster(t, "", shell{root: dir, path: tools(t)})
	c.sh.run(t, "make install", notSubMake...)

	files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	crds := c.dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		group, plural, _ := strings.Cut(name, "_")
		name = plural + "." + group
		testenv.Eventually(t, 30*time.Second, "CRD "+name+" established", func() error {
			crd, err := crds.Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, ci := range conds {
				if cond, _ := ci.(map[string]any); cond["type"] == "Established" && cond["status"] == "True" {
					return nil
				}
			}
			return fmt.Errorf("not established: %v", conds)
		})
	}
}
