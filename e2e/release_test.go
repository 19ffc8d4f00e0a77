package e2e_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
