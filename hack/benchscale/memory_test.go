package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// Issue 17 defect 6: what tenants write into ServiceAccounts must not grow
// the operator. 1,000 ServiceAccounts carrying 250 KB of annotations each
// (244 MiB) exist before the operator starts; the real binary, with the
// soft memory limit --memory-limit-ratio would give it under the
// Deployment's limit, lists and watches them, reconciles bindings and
// restarts, and its peak RSS (VmHWM, as the kernel would count it against
// the container) never reaches the limit the manifests ship. A cache that
// kept the annotations would hold the whole 244 MiB.
func TestTenantAnnotationsStayWithinTheManifestsMemoryLimit(t *testing.T) {
	for _, v := range []string{"KUBEBUILDER_ASSETS", "MOTO_SERVER"} {
		if os.Getenv(v) == "" {
			t.Fatalf("%s is not set: run through `make test`", v)
		}
	}
	limit := manifestMemoryLimit(t)
	bin := filepath.Join(t.TempDir(), "manager")
	build := exec.Command("go", "build", "-o", bin, "github.com/podidentity/podidentity-operator")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the operator: %v\n%s", err, out)
	}

	saved := map[string]string{}
	set := map[string]string{
		"operator":            bin,
		"bindings":            "50",
		"fat-serviceaccounts": "1000",
		"fault-bindings":      "0",
		"fairness-probes":     "0",
		"sync-period":         (30 * time.Second).String(),
		// What --memory-limit-ratio (0.9) makes of the container's limit.
		"operator-gomemlimit": fmt.Sprintf("%dMiB", limit*9/10>>20),
	}
	for name, v := range set {
		saved[name] = flagValue(t, name)
		setFlag(t, name, v)
	}
	t.Cleanup(func() {
		for name, v := range saved {
			setFlag(t, name, v)
		}
	})

	m, err := run()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.peakRSS) != 2 {
		t.Fatalf("measured %d operator processes, want 2", len(m.peakRSS))
	}
	for i, rss := range m.peakRSS {
		t.Logf("operator process %d: peak RSS %d MiB (limit %d MiB)", i+1, rss>>20, limit>>20)
		if rss == 0 || rss >= uint64(limit) {
			t.Errorf("operator process %d: peak RSS %d MiB, the manifests' limit is %d MiB", i+1, rss>>20, limit>>20)
		}
	}
}

// manifestMemoryLimit is the operator container's memory limit in
// config/manager, which the chart's default must match.
func manifestMemoryLimit(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var limit *resource.Quantity
	for _, doc := range splitYAML(raw) {
		var d appsv1.Deployment
		if yaml.Unmarshal(doc, &d) != nil || d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if q, ok := c.Resources.Limits["memory"]; ok {
				limit = &q
			}
		}
	}
	if limit == nil {
		t.Fatal("config/manager/manager.yaml has no Deployment with a memory limit")
	}
	values, err := os.ReadFile(filepath.Join("..", "..", "charts", "podidentity-operator", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Resources struct {
			Limits map[string]resource.Quantity `json:"limits"`
		} `json:"resources"`
	}
	if err := yaml.Unmarshal(values, &v); err != nil {
		t.Fatal(err)
	}
	if chart := v.Resources.Limits["memory"]; chart.Cmp(*limit) != 0 {
		t.Fatalf("the chart limits memory to %s, config/manager to %s", chart.String(), limit.String())
	}
	return limit.Value()
}

func splitYAML(raw []byte) [][]byte {
	var docs [][]byte
	start := 0
	for i := 0; i+4 <= len(raw); i++ {
		if (i == 0 || raw[i-1] == '\n') && string(raw[i:i+4]) == "---\n" {
			docs = append(docs, raw[start:i])
			start = i + 4
		}
	}
	return append(docs, raw[start:])
}

func flagValue(t *testing.T, name string) string {
	t.Helper()
	f := flag.CommandLine.Lookup(name)
	if f == nil {
		t.Fatalf("no flag -%s", name)
	}
	return f.Value.String()
}

func setFlag(t *testing.T, name, v string) {
	t.Helper()
	if err := flag.CommandLine.Set(name, v); err != nil {
		t.Fatal(err)
	}
}
