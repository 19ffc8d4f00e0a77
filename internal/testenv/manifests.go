package testenv

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	kustomizetypes "sigs.k8s.io/kustomize/api/types"

	"github.com/podidentity/podidentity-operator/internal/manifests"
	"github.com/podidentity/podidentity-operator/internal/operator"
)

// OperatorOptions reads the operator's configuration out of a rendered
// Deployment the way the binary does at start-up (main.go): PODIDENTITY_
// variables first, then the arguments, which win. It fails on a flag or
// variable the binary does not define, on a flag given twice, on a variable
// that an argument overrides (a silent no-op), and when Validate refuses
// the result.
func OperatorOptions(deploy *unstructured.Unstructured) (operator.Options, error) {
	var opts operator.Options
	containers, _, err := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	if err != nil || len(containers) == 0 {
		return opts, fmt.Errorf("Deployment %s has no containers", deploy.GetName())
	}
	c, _ := containers[0].(map[string]any)
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	operator.BindCommandLine(fs, &opts, &zap.Options{})
	fs.String("kubeconfig", "", "") // controller-runtime's, on flag.CommandLine in the binary

	var errs []error
	given := map[string]bool{}
	args, _ := c["args"].([]any)
	var argv []string
	for _, a := range args {
		s, _ := a.(string)
		name := strings.SplitN(strings.TrimLeft(s, "-"), "=", 2)[0]
		if given[name] {
			errs = append(errs, fmt.Errorf("%s given twice", s))
		}
		given[name] = true
		argv = append(argv, s)
	}
	flagOf := map[string]string{} // environment variable -> the flag it sets
	fs.VisitAll(func(f *flag.Flag) { flagOf[operator.EnvName(f.Name)] = f.Name })
	env := map[string]string{}
	list, _ := c["env"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		name, _ := m["name"].(string)
		if !strings.HasPrefix(name, operator.EnvPrefix) {
			continue
		}
		if _, dup := env[name]; dup {
			errs = append(errs, fmt.Errorf("variable %s given twice", name))
		}
		value, _ := m["value"].(string)
		env[name] = value
		if flagName, ok := flagOf[name]; !ok {
			errs = append(errs, fmt.Errorf("variable %s sets no flag of the operator", name))
		} else if given[flagName] {
			errs = append(errs, fmt.Errorf("variable %s is overridden by the argument --%s", name, flagName))
		}
	}
	if err := operator.FlagsFromEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		errs = append(errs, err)
	}
	if err := fs.Parse(argv); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, opts.Validate())
	}
	return opts, errors.Join(errs...)
}

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
