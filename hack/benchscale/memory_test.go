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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/podidentity/podidentity-operator/cmd/operator"
	"github.com/podidentity/podidentity-operator/internal/testenv"
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
	limit, ratio := manifestLimits(t)
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
	}
	if ratio > 0 {
		// What --memory-limit-ratio makes of the container's limit.
		set["operator-gomemlimit"] = fmt.Sprintf("%dMiB", int64(float64(limit)*ratio)>>20)
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

// manifestLimits are the operator container's memory limit and its
// --memory-limit-ratio as config/default installs them (the chart renders
// the same Deployment: charts' TestMatchesConfig).
func manifestLimits(t *testing.T) (limit int64, ratio float64) {
	t.Helper()
	objs, err := testenv.Kustomize("default")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
			t.Fatal(err)
		}
		q, ok := d.Spec.Template.Spec.Containers[0].Resources.Limits["memory"]
		if !ok {
			t.Fatalf("Deployment %s has no memory limit", d.Name)
		}
		// The shipped placeholder cluster name, as a user replaces it.
		for i, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == operator.EnvPrefix+"CLUSTER_NAME" {
				d.Spec.Template.Spec.Containers[0].Env[i].Value = "bench"
			}
		}
		u, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(&d)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := operator.OptionsFromDeployment(&unstructured.Unstructured{Object: u})
		if err != nil {
			t.Fatal(err)
		}
		return q.Value(), opts.MemoryLimitRatio
	}
	t.Fatal("config/default has no Deployment")
	return 0, 0
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
