package testenv

import (
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kustomizetypes "sigs.k8s.io/kustomize/api/types"

	"github.com/podidentity/podidentity-operator/internal/manifests"
)

// Kustomize builds config/<dir> with kustomize's own library, as `kubectl
// kustomize` does. With components (paths under config/), it builds what a
// user's kustomization would: the directory as a resource plus those
// components, in that order.
func Kustomize(dir string, components ...string) ([]*unstructured.Unstructured, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if len(components) == 0 {
		return manifests.Build(filepath.Join(root, "config", dir), kustomizetypes.LoadRestrictionsRootOnly)
	}
	k := "resources:\n- ../" + dir + "\ncomponents:\n"
	for _, c := range components {
		k += "- ../" + c + "\n"
	}
	return KustomizeUnder(filepath.Join(root, "config"), k)
}

// KustomizeUnder builds kustomization (a user's kustomization.yaml) from a
// temporary directory inside dir: kustomize wants relative paths.
func KustomizeUnder(dir, kustomization string) ([]*unstructured.Unstructured, error) {
	target, err := os.MkdirTemp(dir, ".render-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(target) }()
	if err := os.WriteFile(filepath.Join(target, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		return nil, err
	}
	// The temporary directory's parent is not its root: lift the
	// restriction that kubectl's kustomize applies to a kustomization's files.
	return manifests.Build(target, kustomizetypes.LoadRestrictionsNone)
}

// ComponentCombinations lists every components list a user can build
// config/default with: at most one webhook component, the pod identity
// webhook only after one, Prometheus and pod restarts with anything, and the
// metrics certificate after Prometheus.
func ComponentCombinations() [][]string {
	var combos [][]string
	for _, webhook := range []string{"", "components/webhook-cert-manager", "components/webhook-self-managed"} {
		for mask := range 8 {
			var combo []string
			if webhook != "" {
				combo = append(combo, webhook)
			}
			if mask&1 != 0 {
				if webhook == "" {
					continue
				}
				combo = append(combo, "components/pod-identity-webhook")
			}
			if mask&2 != 0 {
				combo = append(combo, "components/prometheus")
			}
			if mask&4 != 0 {
				combo = append(combo, "components/pod-restarts")
			}
			combos = append(combos, combo)
		}
	}
	// The metrics certificate touches only the Deployment's metrics flag
	// and volumes (merged with the webhook's) and the ServiceMonitor: with
	// and without a webhook volume and a ServiceMonitor.
	for _, webhook := range []string{"", "components/webhook-cert-manager", "components/webhook-self-managed"} {
		for _, prometheus := range []bool{false, true} {
			var combo []string
			if webhook != "" {
				combo = append(combo, webhook)
			}
			if prometheus {
				combo = append(combo, "components/prometheus")
			}
			combos = append(combos, append(combo, "components/metrics-cert-manager"))
		}
	}
	return combos
}
