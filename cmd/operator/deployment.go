package operator

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// OptionsFromDeployment reads the operator's configuration out of a rendered
// Deployment the way the binary does at start-up (main.go): PODIDENTITY_
// variables first, then the arguments, which win. It fails on a flag or
// variable the binary does not define, on a flag given twice, on a variable
// that an argument overrides (a silent no-op), and when Validate refuses
// the result.
func OptionsFromDeployment(deploy *unstructured.Unstructured) (Options, error) {
	var opts Options
	containers, _, err := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	if err != nil || len(containers) == 0 {
		return opts, fmt.Errorf("Deployment %s has no containers", deploy.GetName())
	}
	c, _ := containers[0].(map[string]any)
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	BindCommandLine(fs, &opts, &zap.Options{})
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
	fs.VisitAll(func(f *flag.Flag) { flagOf[EnvName(f.Name)] = f.Name })
	env := map[string]string{}
	list, _ := c["env"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		name, _ := m["name"].(string)
		if !strings.HasPrefix(name, EnvPrefix) {
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
	if err := FlagsFromEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
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
