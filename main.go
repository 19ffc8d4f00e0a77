// Command podidentity-operator runs the PodIdentityBinding operator.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/podidentity/podidentity-operator/cmd/operator"
	"github.com/podidentity/podidentity-operator/internal/catalog"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	var opts operator.Options
	zapOpts := zap.Options{}
	showVersion := operator.BindCommandLine(flag.CommandLine, &opts, &zapOpts)
	// --kubeconfig is registered by controller-runtime's config package.
	if err := operator.FlagsFromEnv(flag.CommandLine, os.LookupEnv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	flag.Parse()

	if *showVersion {
		fmt.Println("podidentity-operator", version)
		fmt.Println("IAM action catalog:", catalog.DataVersion())
		return
	}
	log := zap.New(zap.UseFlagOptions(&zapOpts))
	ctrl.SetLogger(log)
	if limit, source := operator.SetMemoryLimit(opts.MemoryLimitRatio, os.Getenv, os.ReadFile); limit > 0 {
		log.Info("Go memory limit set from the container's", "bytes", limit, "source", source, "ratio", opts.MemoryLimitRatio)
	}
	if operator.SetGCPercent(opts.GCPercent, os.Getenv) {
		log.Info("Go garbage collection target set", "percent", opts.GCPercent)
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "loading kubeconfig")
		os.Exit(1)
	}
	if err := operator.Run(ctrl.SetupSignalHandler(), cfg, opts, log.WithName("podidentity")); err != nil {
		log.Error(err, "operator stopped")
		os.Exit(1)
	}
}
