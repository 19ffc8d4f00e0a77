// Package operator wires the manager: flags, AWS configuration, OIDC issuer
// and provider discovery, and the PodIdentityBinding controller. main.go and
// the local demo both run it.
package operator

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/controllers/account"
	"github.com/podidentity/podidentity-operator/controllers/admission"
	"github.com/podidentity/podidentity-operator/controllers/binding"
	"github.com/podidentity/podidentity-operator/controllers/guardrail"
	"github.com/podidentity/podidentity-operator/controllers/podidentitywebhook"
	"github.com/podidentity/podidentity-operator/controllers/pods"
	"github.com/podidentity/podidentity-operator/internal/accounts"
	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/catalog"
	"github.com/podidentity/podidentity-operator/internal/eksassoc"
	"github.com/podidentity/podidentity-operator/internal/eventrecorder"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/managedpolicy"
	"github.com/podidentity/podidentity-operator/internal/metricsauth"
	"github.com/podidentity/podidentity-operator/internal/objmeta"
	"github.com/podidentity/podidentity-operator/internal/oidcprovider"
	"github.com/podidentity/podidentity-operator/internal/podwebhook"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/role"
	"github.com/podidentity/podidentity-operator/internal/vocab"
	"github.com/podidentity/podidentity-operator/internal/webhookcert"
)

// Options are the operator's flags.
type Options struct {
	ClusterName     string
	OIDCIssuerURL   string
	OIDCProviderARN string
	// AdditionalOIDCIssuers are "issuer" or "issuer=providerARN" entries.
	AdditionalOIDCIssuers []string
	// EKSClusterName enables EKS Pod Identity (associations in that cluster).
	EKSClusterName string
	// DefaultIdentity is the mechanism of bindings that name none.
	DefaultIdentity         string
	RoleNamePrefix          string
	RolePath                string
	PermissionsBoundaryARN  string
	SyncPeriod              time.Duration
	MaxConcurrentReconciles int
	// MaxBackoff caps a binding's back-off after failures.
	MaxBackoff time.Duration

	// Client-side traffic control.
	IAMReadQPS    float64
	IAMReadBurst  int
	IAMWriteQPS   float64
	IAMWriteBurst int
	KubeAPIQPS    float64
	KubeAPIBurst  int
	// Each namespace's budget of binding changes handled per second.
	NamespaceChangeQPS   float64
	NamespaceChangeBurst int

	BuiltinGuardrails      bool
	TrustPolicySizeLimit   int
	ManagedPoliciesPerRole int

	EnableWebhooks bool
	WebhookHost    string
	WebhookPort    int
	WebhookCertDir string
	// Self-managed webhook certificate.
	WebhookCertSelfManaged bool
	WebhookServiceName     string
	WebhookNamespace       string
	WebhookConfigName      string
	WebhookSecretName      string

	// Built-in pod identity webhook.
	EnablePodIdentityWebhook  bool
	PodWebhookRegion          string
	PodWebhookExcluded        []string
	MutatingWebhookConfigName string

	// Pods that run without the current credentials.
	TrackPods         bool
	EnablePodRestarts bool
	// PodRestartMinInterval is the least time between two restarts of one
	// workload by the operator.
	PodRestartMinInterval time.Duration

	MetricsBindAddress string
	MetricsSecure      bool
	// MetricsCertPath is a directory holding the metrics endpoint's
	// certificate and key ("" serves a self-signed one).
	MetricsCertPath         string
	MetricsCertName         string
	MetricsCertKey          string
	HealthProbeBindAddress  string
	PprofBindAddress        string
	LeaderElect             bool
	LeaderElectionID        string
	LeaderElectionNamespace string

	// DriftSweep detects drift with one account snapshot per sync period
	// instead of reading every binding's roles.
	DriftSweep bool
	// DriftSweepListPages caps the ListRoles pages of one sweep.
	DriftSweepListPages int

	// MemoryLimitRatio sets the Go runtime's soft memory limit to this share
	// of the container's memory limit (main.go; not the demo).
	MemoryLimitRatio float64
	// GCPercent is the Go garbage collector's target percentage (GOGC).
	GCPercent int

	// SkipControllerNameValidation lets one process start the operator more
	// than once (tests that restart it); not a flag.
	SkipControllerNameValidation bool
	// SkipBindingsMetric leaves out the podidentity_bindings collector,
	// which one process can register only once: for a second operator
	// running beside another in the same process (tests).
	SkipBindingsMetric bool
	// WrapIAM, when set, wraps the IAM client (tests: paging, counting); not
	// a flag.
	WrapIAM func(awsiam.API) awsiam.API
}

// BindFlags registers the flags on fs with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.ClusterName, "cluster-name", "", "Name of this cluster (required). Goes into ownership tags and generated role names.")
	fs.StringVar(&o.OIDCIssuerURL, "oidc-issuer-url", "", "Service-account token issuer. Default: read from the API server's /.well-known/openid-configuration.")
	fs.StringVar(&o.OIDCProviderARN, "oidc-provider-arn", "", "ARN of the cluster's IAM OIDC identity provider. Default: arn:<partition>:iam::<account>:oidc-provider/<issuer>, account and partition from STS GetCallerIdentity.")
	fs.Func("additional-oidc-issuers", "Comma-separated issuers of other clusters that every role also trusts, for the same namespace:serviceaccount (blue/green upgrades, multi-region fleets): \"https://issuer\" (provider in this account) or \"https://issuer=arn:aws:iam::<account>:oidc-provider/<id>\".", func(v string) error {
		o.AdditionalOIDCIssuers = nil
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				o.AdditionalOIDCIssuers = append(o.AdditionalOIDCIssuers, e)
			}
		}
		return nil
	})
	fs.StringVar(&o.EKSClusterName, "eks-cluster-name", "", "Name of this EKS cluster: enables spec.identity EKSPodIdentity (pod identity associations are created in it; its ARN and account come from eks:DescribeCluster at start). Empty: IRSA only.")
	fs.StringVar(&o.DefaultIdentity, "default-identity", string(v1alpha1.IdentityIRSA), "Identity mechanism of bindings whose spec.identity is unset: IRSA or EKSPodIdentity (needs --eks-cluster-name).")
	fs.StringVar(&o.RoleNamePrefix, "role-name-prefix", "", "Prefix of generated IAM role names.")
	fs.StringVar(&o.RolePath, "role-path", "/podidentity/", "IAM path of every role the operator creates.")
	fs.StringVar(&o.PermissionsBoundaryARN, "permissions-boundary-arn", "", "Permissions boundary applied to every role (empty: none is set, and an existing one is left alone).")
	fs.DurationVar(&o.SyncPeriod, "sync-period", 10*time.Minute, "How often each binding is checked for drift in IAM (jittered by up to 10%).")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "Bindings reconciled in parallel.")
	fs.Float64Var(&o.NamespaceChangeQPS, "namespace-change-qps", 10, "Binding changes (created, edited, deleted) of one namespace the operator handles per second, after --namespace-change-burst; more wait in their namespace's line, so one tenant looping changes cannot take the operator, IAM's rate limit or the API server from the others. Restarts, drift, retries and guardrail or account changes are not counted. 0: unbounded.")
	fs.IntVar(&o.NamespaceChangeBurst, "namespace-change-burst", 100, "Binding changes of one namespace handled at once above --namespace-change-qps.")
	fs.BoolVar(&o.DriftSweep, "drift-sweep", true, "Detect drift in IAM once per --sync-period for all bindings with a paginated snapshot of each account (GetAccountAuthorizationDetails and ListRoles; the operator's own and each PodIdentityAccount's), enqueuing only bindings whose roles differ; false re-reads every binding's roles every period (4 IAM reads each).")
	fs.IntVar(&o.DriftSweepListPages, "drift-sweep-list-pages", 3, "ListRoles pages (1,000 roles each) one drift sweep reads at most, continuing where the last stopped (0: all). Trust, permissions, boundary and tags are read in full every sweep; with more roles than this under --role-path, a changed description or maximum session duration is seen within ceil(roles/1000/this) sweeps. The first sweep after a start lists every page.")
	fs.IntVar(&o.GCPercent, "gc-percent", 35, "Garbage collection target of the Go runtime (as GOGC): the heap may grow this many percent over the live heap before a collection. Lower keeps memory closer to the live heap at some CPU cost (see docs/benchmarks.md); GOGC, when set, wins.")
	fs.Float64Var(&o.MemoryLimitRatio, "memory-limit-ratio", 0.9, "Soft memory limit of the Go runtime as a share of the container's memory limit (cgroup), so garbage is collected before the container is OOM-killed; 0 disables it, and GOMEMLIMIT, when set, wins.")
	fs.DurationVar(&o.MaxBackoff, "max-backoff", time.Minute, "Cap of a binding's exponential back-off after retryable failures (IAM unavailable or throttling): after IAM recovers, every binding is retried within this time.")
	fs.Float64Var(&o.IAMReadQPS, "iam-read-qps", 100, "Client-side rate of IAM read calls (Get*, List*) shared by all workers, SDK retries included.")
	fs.IntVar(&o.IAMReadBurst, "iam-read-burst", 100, "Burst of IAM read calls above --iam-read-qps.")
	fs.Float64Var(&o.IAMWriteQPS, "iam-write-qps", 100, "Client-side rate of IAM write calls shared by all workers, SDK retries included.")
	fs.IntVar(&o.IAMWriteBurst, "iam-write-burst", 100, "Burst of IAM write calls above --iam-write-qps.")
	fs.Float64Var(&o.KubeAPIQPS, "kube-api-qps", 500, "Client-side rate of Kubernetes API requests (the API server's priority and fairness still applies).")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", 1000, "Burst of Kubernetes API requests above --kube-api-qps.")
	fs.BoolVar(&o.BuiltinGuardrails, "builtin-guardrails", true, "Apply the built-in guardrails: no \"*\" actions, no IAM writes, no sts:AssumeRole* on \"*\", no organizations or account actions.")
	fs.IntVar(&o.TrustPolicySizeLimit, "trust-policy-size-limit", guard.DefaultTrustPolicySize, "The account's IAM quota for trust policy size (2048 by default, up to 4096 after a quota increase).")
	fs.IntVar(&o.ManagedPoliciesPerRole, "managed-policies-per-role", guard.DefaultManagedPoliciesPerRole, "The account's IAM quota of managed policies per role (10 by default, up to 20).")
	fs.BoolVar(&o.EnableWebhooks, "enable-webhooks", false, "Serve the validating admission webhooks (needs a serving certificate, see config/overlays).")
	fs.StringVar(&o.WebhookHost, "webhook-host", "", "Address the webhook server listens on (default: all).")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "Port of the webhook server.")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", "", "Directory with tls.crt and tls.key for the webhook server (default: controller-runtime's /tmp/k8s-webhook-server/serving-certs).")
	fs.BoolVar(&o.WebhookCertSelfManaged, "webhook-cert-self-managed", false, "Generate the webhook's serving certificate at start-up and put its CA into the ValidatingWebhookConfiguration (instead of cert-manager).")
	fs.StringVar(&o.WebhookServiceName, "webhook-service-name", "podidentity-webhook-service", "Webhook Service the self-managed certificate is for.")
	fs.StringVar(&o.WebhookNamespace, "webhook-namespace", "podidentity-system", "Namespace of that Service.")
	fs.StringVar(&o.WebhookConfigName, "webhook-config-name", "podidentity-validating-webhook-configuration", "ValidatingWebhookConfiguration that receives the self-managed CA.")
	fs.StringVar(&o.WebhookSecretName, "webhook-secret-name", "podidentity-webhook-server-cert", "Secret (in --webhook-namespace) that stores the self-managed certificate, shared by all replicas.")
	fs.BoolVar(&o.EnablePodIdentityWebhook, "enable-pod-identity-webhook", false, "Serve the built-in pod identity webhook at "+podidentitywebhook.Path+": pods whose ServiceAccount has eks.amazonaws.com/role-arn get the projected token and AWS_* environment, as AWS's webhook does on EKS. Needs --enable-webhooks and config/components/pod-identity-webhook.")
	fs.StringVar(&o.PodWebhookRegion, "pod-identity-webhook-region", "", "Region written as AWS_REGION and AWS_DEFAULT_REGION into injected containers (empty: not set).")
	fs.Func("pod-identity-webhook-excluded-namespaces", "Comma-separated namespaces whose pods are never mutated (default kube-system). Namespaces labelled "+vocab.LabelPodWebhook+"=disabled are skipped too.", func(v string) error {
		o.PodWebhookExcluded = nil
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.PodWebhookExcluded = append(o.PodWebhookExcluded, n)
			}
		}
		return nil
	})
	o.PodWebhookExcluded = []string{"kube-system"}
	fs.StringVar(&o.MutatingWebhookConfigName, "mutating-webhook-config-name", "podidentity-mutating-webhook-configuration", "MutatingWebhookConfiguration of the pod identity webhook; receives the self-managed CA when --enable-pod-identity-webhook is set.")
	fs.BoolVar(&o.TrackPods, "track-pods", true, "Report, per binding, the running pods of its ServiceAccount that lack the current role's credentials (status.pods, condition PodsCurrent). Watches pods, trimmed in memory to the few fields it reads.")
	fs.DurationVar(&o.PodRestartMinInterval, "pod-restart-min-interval", 2*time.Minute, "The least time between two restarts of one workload for podRestartPolicy Rollout, however often its binding's role changes.")
	fs.BoolVar(&o.EnablePodRestarts, "enable-pod-restarts", false, "Let bindings with podRestartPolicy Rollout restart the Deployments, StatefulSets and DaemonSets that own stale pods. Needs --track-pods and the RBAC in config/components/pod-restarts.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", "0", "Address of the metrics endpoint, e.g. :8443 (\"0\" disables it).")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true, "Serve metrics over HTTPS with Kubernetes authentication and authorization.")
	fs.StringVar(&o.MetricsCertPath, "metrics-cert-path", "", "Directory with the metrics endpoint's serving certificate and key (a mounted Secret, e.g. from cert-manager); reloaded when they change. Empty: a self-signed certificate.")
	fs.StringVar(&o.MetricsCertName, "metrics-cert-name", "tls.crt", "The certificate's file name in --metrics-cert-path.")
	fs.StringVar(&o.MetricsCertKey, "metrics-cert-key", "tls.key", "The key's file name in --metrics-cert-path.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes (\"0\" disables them).")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", "0", "Address of Go's /debug/pprof endpoints, e.g. 127.0.0.1:6060 (\"0\" disables them). For profiling only; never expose it.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "Enable leader election, so only one replica reconciles.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election lease (default: the operator's namespace).")
	o.LeaderElectionID = "podidentity-operator.iam.podidentity.io"
}

// BindCommandLine registers the binary's flags on fs: the operator's
// options, the logger's, and --version, which it returns. (--kubeconfig is
// controller-runtime's, registered on flag.CommandLine.)
func BindCommandLine(fs *flag.FlagSet, o *Options, zapOpts *zap.Options) *bool {
	o.BindFlags(fs)
	zapOpts.BindFlags(fs)
	return fs.Bool("version", false, "Print the version and exit.")
}

// EnvPrefix prefixes the environment variables that set flags: PODIDENTITY_CLUSTER_NAME
// sets --cluster-name. A flag on the command line wins over its variable. This
// is how OLM users configure the operator (Subscription spec.config.env).
const EnvPrefix = "PODIDENTITY_"

// EnvName is the environment variable that sets the flag named flagName.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// FlagsFromEnv sets every flag of fs that has an environment variable.
// Call it before fs.Parse.
func FlagsFromEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		if v, ok := lookup(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// Validate checks the flags.
func (o *Options) Validate() error {
	var errs []error
	if o.ClusterName == "" || placeholder(o.ClusterName) {
		errs = append(errs, fmt.Errorf("--cluster-name is %q: set it (or the environment variable %sCLUSTER_NAME) to this cluster's name; it goes into every role's ownership tag and name", o.ClusterName, EnvPrefix))
	} else if !clusterNameRE.MatchString(o.ClusterName) {
		errs = append(errs, fmt.Errorf("--cluster-name %q: use 1-100 letters, digits and + = , . @ _ -", o.ClusterName))
	}
	if o.MetricsCertPath != "" && !o.MetricsSecure {
		errs = append(errs, errors.New("--metrics-cert-path needs --metrics-secure (a certificate is only served over HTTPS)"))
	}
	if !strings.HasPrefix(o.RolePath, "/") || !strings.HasSuffix(o.RolePath, "/") || len(o.RolePath) > 512 {
		errs = append(errs, fmt.Errorf("--role-path %q must start and end with / and be at most 512 characters", o.RolePath))
	}
	if o.RoleNamePrefix != "" && !prefixRE.MatchString(o.RoleNamePrefix) {
		errs = append(errs, fmt.Errorf("--role-name-prefix %q: use at most 32 letters, digits and + = , . @ _ -", o.RoleNamePrefix))
	}
	if o.PermissionsBoundaryARN != "" && !arn.IsARN(o.PermissionsBoundaryARN) {
		errs = append(errs, fmt.Errorf("--permissions-boundary-arn %q is not an ARN", o.PermissionsBoundaryARN))
	}
	if o.OIDCProviderARN != "" && !arn.IsARN(o.OIDCProviderARN) {
		errs = append(errs, fmt.Errorf("--oidc-provider-arn %q is not an ARN", o.OIDCProviderARN))
	}
	switch v1alpha1.Identity(o.DefaultIdentity) {
	case "", v1alpha1.IdentityIRSA:
	case v1alpha1.IdentityEKSPodIdentity:
		if o.EKSClusterName == "" {
			errs = append(errs, errors.New("--default-identity EKSPodIdentity needs --eks-cluster-name (the cluster whose pod identity associations the operator manages)"))
		}
	default:
		errs = append(errs, fmt.Errorf("--default-identity %q: use IRSA or EKSPodIdentity", o.DefaultIdentity))
	}
	if o.SyncPeriod < time.Second {
		errs = append(errs, fmt.Errorf("--sync-period %s is below the 1s minimum", o.SyncPeriod))
	}
	if o.TrustPolicySizeLimit < 1 || o.TrustPolicySizeLimit > guard.MaxTrustPolicySize {
		errs = append(errs, fmt.Errorf("--trust-policy-size-limit must be between 1 and %d", guard.MaxTrustPolicySize))
	}
	if o.ManagedPoliciesPerRole < 1 || o.ManagedPoliciesPerRole > guard.MaxManagedPoliciesPerRole {
		errs = append(errs, fmt.Errorf("--managed-policies-per-role must be between 1 and %d", guard.MaxManagedPoliciesPerRole))
	}
	if o.EnablePodRestarts && !o.TrackPods {
		errs = append(errs, errors.New("--enable-pod-restarts needs --track-pods"))
	}
	if o.EnablePodIdentityWebhook && !o.EnableWebhooks {
		errs = append(errs, errors.New("--enable-pod-identity-webhook needs --enable-webhooks (the webhook server and its certificate)"))
	}
	if o.MaxBackoff < time.Second {
		errs = append(errs, fmt.Errorf("--max-backoff %s is below the 1s minimum", o.MaxBackoff))
	}
	if o.IAMReadQPS <= 0 || o.IAMWriteQPS <= 0 || o.IAMReadBurst < 1 || o.IAMWriteBurst < 1 {
		errs = append(errs, errors.New("--iam-read-qps, --iam-write-qps and their bursts must be positive"))
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst < 1 {
		errs = append(errs, errors.New("--kube-api-qps and --kube-api-burst must be positive"))
	}
	if o.MaxConcurrentReconciles < 1 {
		errs = append(errs, errors.New("--max-concurrent-reconciles must be at least 1"))
	}
	if o.NamespaceChangeQPS < 0 || (o.NamespaceChangeQPS > 0 && o.NamespaceChangeBurst < 1) {
		errs = append(errs, fmt.Errorf("--namespace-change-qps %g, --namespace-change-burst %d: the rate must be 0 (unbounded) or more, and the burst at least 1 when the rate is set", o.NamespaceChangeQPS, o.NamespaceChangeBurst))
	}
	if o.GCPercent < 0 {
		errs = append(errs, errors.New("--gc-percent must not be negative (0 leaves the Go runtime's default, 100)"))
	}
	return errors.Join(errs...)
}

// placeholder reports whether a cluster name is one of the shipped
// placeholders, which must never reach IAM as an ownership tag.
func placeholder(name string) bool {
	switch strings.ToLower(strings.Trim(name, "<>{}$ ")) {
	case "change-me", "changeme", "cluster-name", "clustername", "cluster", "todo", "example", "placeholder":
		return true
	}
	return false
}

var (
	clusterNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,100}$`)
	prefixRE      = regexp.MustCompile(`^[\w+=,.@-]{1,32}$`)
)

// newRecorder is the operator's event recorder: Warnings through the
// manager's broadcaster, Normal events written directly (decision 53).
func newRecorder(mgr ctrl.Manager, log logr.Logger) (*eventrecorder.Recorder, error) {
	c, err := eventsv1client.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return nil, err
	}
	create := func(ctx context.Context, e *eventsv1.Event) error {
		_, err := c.Events(e.Namespace).Create(ctx, e, metav1.CreateOptions{})
		return err
	}
	rec := eventrecorder.New(mgr.GetScheme(), eventReporter, mgr.GetEventRecorder(eventReporter), create, log)
	return rec, mgr.Add(rec)
}

// eventReporter is the reporting controller of the operator's events.
const eventReporter = "podidentity-operator"

// Scheme knows the core types and the operator's API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// kubeClientConfig is the operator's API server client configuration: the
// flags' rate limit, and no gzip (decision 99). The API server compresses
// list and watch responses for clients that accept it, which costs its CPU
// (shared by every tenant) and ours on every binding, ServiceAccount and
// pod event, to save bandwidth on a connection inside the cluster.
func kubeClientConfig(cfg *rest.Config, o Options) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(o.KubeAPIQPS), o.KubeAPIBurst
	cfg.DisableCompression = true
	return cfg
}

// newWatchCache is the manager's cache on a connection of its own: the
// informers' watches stream every binding event of every tenant, and the
// operator's requests (its writes, live reads) must not wait behind them
// in one HTTP/2 connection. A config with a dialer of its own gets a
// transport of its own (client-go caches transports by config, and cannot
// compare dialers).
func newWatchCache(cfg *rest.Config, opts cache.Options) (cache.Cache, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	opts.HTTPClient = hc
	return cache.New(cfg, opts)
}

// Run starts the operator and blocks until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options, log logr.Logger) error {
	if err := o.Validate(); err != nil {
		return err
	}
	cfg = kubeClientConfig(cfg, o)
	awsCfg, err := LoadAWSConfig(ctx, awsiam.Limits{ReadQPS: o.IAMReadQPS, ReadBurst: o.IAMReadBurst, WriteQPS: o.IAMWriteQPS, WriteBurst: o.IAMWriteBurst}, awsiam.OperatorAccount)
	if err != nil {
		return err
	}
	// EKS first: with --eks-cluster-name, the cluster's OIDC issuer comes
	// from eks:DescribeCluster unless --oidc-issuer-url names one.
	var associations binding.AssociationClient
	var podIdentity *identity.PodIdentity
	if o.EKSClusterName != "" {
		eksClient := eks.NewFromConfig(awsCfg)
		out, err := eksClient.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String(o.EKSClusterName)})
		if err != nil {
			return fmt.Errorf("--eks-cluster-name %s: eks:DescribeCluster: %w", o.EKSClusterName, err)
		}
		clusterARN := aws.ToString(out.Cluster.Arn)
		parsed, err := arn.Parse(clusterARN)
		if err != nil {
			return fmt.Errorf("--eks-cluster-name %s: cluster ARN %q: %w", o.EKSClusterName, clusterARN, err)
		}
		podIdentity = &identity.PodIdentity{Account: parsed.AccountID, ClusterARN: clusterARN}
		associations = &eksassoc.Client{API: eksClient, Cluster: o.EKSClusterName}
		if id := out.Cluster.Identity; o.OIDCIssuerURL == "" && id != nil && id.Oidc != nil && aws.ToString(id.Oidc.Issuer) != "" {
			o.OIDCIssuerURL = aws.ToString(id.Oidc.Issuer)
		}
		log.Info("EKS Pod Identity", "cluster", clusterARN, "issuer", o.OIDCIssuerURL)
	}
	roleCfg, err := ResolveRoleConfig(ctx, cfg, o, sts.NewFromConfig(awsCfg))
	if err != nil {
		return err
	}
	roleCfg.DefaultIdentity = v1alpha1.Identity(o.DefaultIdentity)
	roleCfg.PodIdentity = podIdentity
	log.Info("operator configuration", "cluster", roleCfg.ClusterName, "issuer", roleCfg.Issuer,
		"providerARN", roleCfg.ProviderARN, "rolePath", roleCfg.RolePath, "permissionsBoundary", roleCfg.PermissionsBoundaryARN, "additionalProviders", roleCfg.AdditionalProviders)
	iamClient := iam.NewFromConfig(awsCfg)
	var api awsiam.API = iamClient
	if o.WrapIAM != nil {
		api = o.WrapIAM(api)
	}
	// Read once now, so the first reconciles know whether the provider
	// exists, then every sync period. Not fatal: roles can be prepared
	// before the provider exists; bindings report OIDCProviderMissing.
	provider := oidcprovider.NewWatcher(iamClient, roleCfg.ProviderARN, o.SyncPeriod, log.WithName("oidc-provider"))
	if s := provider.Check(ctx); !s.Exists {
		log.Error(s.Err, "the cluster's OIDC identity provider is not usable yet; bindings are not Ready until it exists in IAM",
			"providerARN", roleCfg.ProviderARN, "known", s.Known)
	}

	metricsOpts := metricsserver.Options{BindAddress: o.MetricsBindAddress, SecureServing: o.MetricsSecure}
	if o.MetricsSecure && o.MetricsCertPath != "" {
		metricsOpts.CertDir, metricsOpts.CertName, metricsOpts.KeyName = o.MetricsCertPath, o.MetricsCertName, o.MetricsCertKey
	}
	if o.MetricsSecure {
		metricsOpts.FilterProvider = metricsauth.FilterProvider
		metricsOpts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	mgrOpts := ctrl.Options{
		Scheme:                        Scheme(),
		Logger:                        log,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		PprofBindAddress:              o.PprofBindAddress,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	}
	// Bindings and guardrails are cached without what nothing reads (a
	// large part of each object at scale).
	mgrOpts.Cache.ByObject = map[client.Object]cache.ByObject{
		&v1alpha1.PodIdentityBinding{}:   {Transform: objmeta.TrimBinding},
		&v1alpha1.PodIdentityGuardrail{}: {Transform: objmeta.StripApplyMetadata},
		objmeta.ServiceAccountMeta():     {Transform: objmeta.TrimMetadata},
		objmeta.NamespaceMeta():          {Transform: objmeta.TrimMetadata},
	}
	mgrOpts.NewCache = newWatchCache
	if o.TrackPods {
		// Pods are cached trimmed to what the pods controller reads.
		mgrOpts.Cache.ByObject[&corev1.Pod{}] = cache.ByObject{Transform: podwebhook.TrimPod}
	}
	if o.SkipControllerNameValidation {
		skip := true
		mgrOpts.Controller.SkipNameValidation = &skip
	}
	if o.EnableWebhooks && o.WebhookCertSelfManaged {
		if o.WebhookCertDir == "" {
			o.WebhookCertDir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
		}
		c, err := client.New(cfg, client.Options{Scheme: Scheme()})
		if err != nil {
			return err
		}
		certOpts := webhookcert.Options{ServiceName: o.WebhookServiceName, Namespace: o.WebhookNamespace,
			CertDir: o.WebhookCertDir, WebhookConfigName: o.WebhookConfigName, SecretName: o.WebhookSecretName}
		if o.EnablePodIdentityWebhook {
			certOpts.MutatingWebhookConfigName = o.MutatingWebhookConfigName
		}
		if err := webhookcert.Ensure(ctx, c, certOpts); err != nil {
			return fmt.Errorf("self-managed webhook certificate: %w", err)
		}
		log.Info("webhook serving certificate ready", "service", o.WebhookServiceName, "namespace", o.WebhookNamespace)
		// Every replica re-reads the Secret each minute: it picks up a
		// certificate another replica renewed, and restores a reset CA bundle.
		go webhookcert.Keep(ctx, c, certOpts, log.WithName("webhook-cert"))
	}
	if o.EnableWebhooks {
		mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.WebhookCertDir})
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	checker := guard.Checker{
		Catalog:                catalog.Default(),
		RoleConfig:             roleCfg,
		TrustPolicySize:        o.TrustPolicySizeLimit,
		ManagedPoliciesPerRole: o.ManagedPoliciesPerRole,
		Builtins:               o.BuiltinGuardrails,
	}
	guardrails := guardrail.Source{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader()}
	// A default version is reused for a tenth of the sync period by
	// reconciles and admission; every sweep reads it afresh.
	policies := &managedpolicy.Reader{IAM: api, DefaultTTL: o.SyncPeriod / 10}
	recorder, err := newRecorder(mgr, log.WithName("events"))
	if err != nil {
		return err
	}
	r := &binding.Reconciler{
		Guard:                   checker,
		Guardrails:              guardrails,
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                recorder,
		Roles:                   role.Client{IAM: api},
		Policies:                policies,
		Config:                  roleCfg,
		Provider:                provider,
		Associations:            associations,
		SyncPeriod:              o.SyncPeriod,
		MaxBackoff:              o.MaxBackoff,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		NamespaceChangeQPS:      o.NamespaceChangeQPS,
		NamespaceChangeBurst:    o.NamespaceChangeBurst,
	}
	if err := mgr.Add(provider); err != nil {
		return err
	}
	// Other AWS accounts (PodIdentityAccount): built on first use, each
	// with credentials from sts:AssumeRole and its own IAM rate limits.
	limits := awsiam.Limits{ReadQPS: o.IAMReadQPS, ReadBurst: o.IAMReadBurst, WriteQPS: o.IAMWriteQPS, WriteBurst: o.IAMWriteBurst}
	stsClient := sts.NewFromConfig(awsCfg)
	registry := &accounts.Registry{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Home: &accounts.Account{Key: accounts.Home, Config: roleCfg, Guard: checker},
		Build: func(_ context.Context, pia *v1alpha1.PodIdentityAccount) (*accounts.Account, error) {
			return BuildAccount(ctx, pia, roleCfg, checker, stsClient, limits, o, log)
		}}
	r.Accounts = registry
	if o.DriftSweep {
		cache := &role.Cache{Inner: role.Client{IAM: api}, TTL: o.SyncPeriod * 3 / 2, FirstFillWait: 30 * time.Second}
		r.Roles = cache
		r.Sweep = &binding.Sweeper{Reconciler: r, Period: o.SyncPeriod, Log: log.WithName("drift-sweep"), Cache: cache,
			Snapshot: (&role.Snapshotter{API: api, Path: roleCfg.RolePath, ListPages: o.DriftSweepListPages, Known: cache.Known}).Snapshot,
			Accounts: registry}
		registry.OnBuild = r.Sweep.Kick
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up controller: %w", err)
	}
	if o.TrackPods {
		pods := &pods.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
			Recorder: recorder, Guardrails: guardrails, EnableRestarts: o.EnablePodRestarts, MinRestartInterval: o.PodRestartMinInterval,
			// The mechanism in effect (status), which may differ from the
			// spec's while it is being switched or narrowed by a guardrail.
			Mechanism: func(b *v1alpha1.PodIdentityBinding) identity.Mechanism { return roleCfg.MechanismOf(b.Status.Identity) }}
		if err := pods.SetupWithManager(ctx, mgr); err != nil {
			return fmt.Errorf("setting up pods controller: %w", err)
		}
	}
	if err := (&account.Reconciler{Client: mgr.GetClient(), Accounts: registry, SyncPeriod: o.SyncPeriod}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up account controller: %w", err)
	}
	if err := (&guardrail.Reconciler{Client: mgr.GetClient(), Guard: checker}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up guardrail controller: %w", err)
	}
	if o.EnableWebhooks {
		if err := admission.Setup(mgr, &admission.BindingValidator{Guard: checker, Guardrails: guardrails, Policies: policies, Accounts: registry},
			&admission.GuardrailValidator{Catalog: checker.Catalog}); err != nil {
			return fmt.Errorf("setting up webhooks: %w", err)
		}
	}
	if o.EnablePodIdentityWebhook {
		podidentitywebhook.Setup(mgr, &podidentitywebhook.Injector{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
			Config: podwebhook.Config{Region: o.PodWebhookRegion}, ExcludedNamespaces: o.PodWebhookExcluded})
	}
	if !o.SkipBindingsMetric {
		collector := newBindingsCollector(mgr.GetCache(), mgr.Elected())
		if err := ctrlmetrics.Registry.Register(collector); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		defer ctrlmetrics.Registry.Unregister(collector)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	if o.EnableWebhooks {
		// Ready only once the webhook server serves: the webhook fails
		// closed, so a pod must not take traffic before it can answer.
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return err
		}
	}
	return mgr.Start(ctx)
}

// LoadAWSConfig loads the SDK's default configuration chain (environment,
// shared config, web identity, container and instance credentials, and the
// AWS_ENDPOINT_URL* variables) and counts every call in the metrics.
func LoadAWSConfig(ctx context.Context, limits awsiam.Limits, account string) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		// IAM is global; STS needs some region to sign for.
		cfg.Region = "us-east-1"
	}
	awsiam.WithMetrics(&cfg, account)
	awsiam.WithDeadline(&cfg, awsiam.CallTimeout)
	awsiam.WithTrafficControl(&cfg, limits)
	return cfg, nil
}

// BuildAccount makes what the operator needs to act in the AWS account of a
// PodIdentityAccount: credentials from sts:AssumeRole on its role (the
// SDK's cached provider refreshes them before they expire), an IAM client
// with its own rate limits, managed policy reads, the OIDC provider watch
// and the role configuration. ctx bounds the provider watch.
func BuildAccount(ctx context.Context, pia *v1alpha1.PodIdentityAccount, home role.Config, checker guard.Checker,
	stsClient stscreds.AssumeRoleAPIClient, limits awsiam.Limits, o Options, log logr.Logger) (*accounts.Account, error) {
	spec := pia.Spec
	roleCfg, err := accounts.Config(home, spec)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadAWSConfig(ctx, AccountLimits(limits, spec.IAMRateLimits), pia.Spec.AccountID)
	if err != nil {
		return nil, err
	}
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, spec.RoleARN, func(ao *stscreds.AssumeRoleOptions) {
		ao.RoleSessionName = cmp.Or(spec.SessionName, "podidentity-operator")
		if spec.ExternalID != "" {
			ao.ExternalID = aws.String(spec.ExternalID)
		}
	}))
	iamClient := iam.NewFromConfig(cfg)
	var api awsiam.API = iamClient
	if o.WrapIAM != nil {
		api = o.WrapIAM(api)
	}
	guardCfg := checker
	guardCfg.RoleConfig = roleCfg
	watchCtx, stop := context.WithCancel(ctx)
	provider := oidcprovider.NewWatcher(iamClient, roleCfg.ProviderARN, o.SyncPeriod, log.WithName("oidc-provider").WithValues("account", spec.AccountID))
	go func() { _ = provider.Start(watchCtx) }()
	a := &accounts.Account{Key: spec.AccountID, Name: pia.Name, Config: roleCfg, Guard: guardCfg, IAM: api,
		Policies: &managedpolicy.Reader{IAM: api, DefaultTTL: o.SyncPeriod / 10}, Provider: provider, Stop: stop,
		Check: func(ctx context.Context) error {
			creds, err := cfg.Credentials.Retrieve(ctx)
			if err != nil {
				return fmt.Errorf("assuming role %s: %w", spec.RoleARN, err)
			}
			// The SDK reads the account of the assumed role from STS's answer.
			if creds.AccountID != spec.AccountID {
				return fmt.Errorf("role %s is in account %s, not %s: %w", spec.RoleARN, cmp.Or(creds.AccountID, "(unknown)"), spec.AccountID, accounts.ErrAccountMismatch)
			}
			return nil
		}}
	if o.DriftSweep {
		// The account's own drift sweep and role cache, as in the
		// operator's account: the registry kicks the sweep when it builds
		// an account, so reconciles wait briefly for the first snapshot
		// (after a restart, instead of reading each role).
		a.Roles = &role.Cache{Inner: role.Client{IAM: api}, TTL: o.SyncPeriod * 3 / 2, FirstFillWait: 30 * time.Second, Account: spec.AccountID}
		a.Snapshot = (&role.Snapshotter{API: api, Path: roleCfg.RolePath, ListPages: o.DriftSweepListPages, Known: a.Roles.Known}).Snapshot
	}
	return a, nil
}

// AccountLimits are an account's IAM rate limits: its PodIdentityAccount's,
// and the flags' (limits) for every field it leaves out.
func AccountLimits(limits awsiam.Limits, l *v1alpha1.IAMRateLimits) awsiam.Limits {
	if l != nil {
		limits.ReadQPS = cmp.Or(float64(l.ReadQPS), limits.ReadQPS)
		limits.ReadBurst = cmp.Or(int(l.ReadBurst), limits.ReadBurst)
		limits.WriteQPS = cmp.Or(float64(l.WriteQPS), limits.WriteQPS)
		limits.WriteBurst = cmp.Or(int(l.WriteBurst), limits.WriteBurst)
	}
	return limits
}

// CallerIdentityAPI is the STS call used to find the account and partition.
type CallerIdentityAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// ResolveRoleConfig turns flags into the role configuration, discovering the
// issuer from the API server and the provider ARN from STS when not given.
func ResolveRoleConfig(ctx context.Context, cfg *rest.Config, o Options, stsClient CallerIdentityAPI) (role.Config, error) {
	issuer := o.OIDCIssuerURL
	if issuer == "" {
		var err error
		if issuer, err = DiscoverIssuer(ctx, cfg); err != nil {
			return role.Config{}, fmt.Errorf("discovering the service-account issuer (set --oidc-issuer-url to skip): %w", err)
		}
	}
	providerID, err := policy.ProviderID(issuer)
	if err != nil {
		return role.Config{}, err
	}
	provider := o.OIDCProviderARN
	if provider == "" {
		id, err := stsClient.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return role.Config{}, fmt.Errorf("finding the AWS account with STS GetCallerIdentity (set --oidc-provider-arn to skip): %w", err)
		}
		caller, err := arn.Parse(aws.ToString(id.Arn))
		if err != nil {
			return role.Config{}, fmt.Errorf("parsing caller ARN: %w", err)
		}
		provider = ProviderARN(caller.Partition, aws.ToString(id.Account), providerID)
	}
	additional, err := additionalProviders(o.AdditionalOIDCIssuers, provider, providerID)
	if err != nil {
		return role.Config{}, err
	}
	return role.Config{
		AdditionalProviders:    additional,
		ClusterName:            o.ClusterName,
		RoleNamePrefix:         o.RoleNamePrefix,
		RolePath:               o.RolePath,
		PermissionsBoundaryARN: o.PermissionsBoundaryARN,
		ProviderARN:            provider,
		Issuer:                 providerID,
	}, nil
}

// additionalProviders parses --additional-oidc-issuers. A provider without an
// ARN is taken to be in the partition and account of this cluster's.
func additionalProviders(entries []string, primaryARN, primaryID string) ([]policy.Provider, error) {
	var out []policy.Provider
	seen := map[string]bool{primaryID: true}
	for _, e := range entries {
		issuer, providerARN := e, ""
		if i := strings.Index(e, "=arn:"); i >= 0 {
			issuer, providerARN = e[:i], e[i+1:]
		}
		id, err := policy.ProviderID(issuer)
		if err != nil {
			return nil, fmt.Errorf("--additional-oidc-issuers: %w", err)
		}
		if seen[id] {
			return nil, fmt.Errorf("--additional-oidc-issuers: issuer %q is listed twice or is this cluster's own", issuer)
		}
		seen[id] = true
		if providerARN == "" {
			primary, err := arn.Parse(primaryARN)
			if err != nil {
				return nil, fmt.Errorf("--additional-oidc-issuers: deriving the provider of %q from %s: %w", issuer, primaryARN, err)
			}
			providerARN = ProviderARN(primary.Partition, primary.AccountID, id)
		} else if a, err := arn.Parse(providerARN); err != nil || a.Service != "iam" || !strings.HasPrefix(a.Resource, "oidc-provider/") {
			return nil, fmt.Errorf("--additional-oidc-issuers: %q is not an IAM OIDC provider ARN", providerARN)
		}
		out = append(out, policy.Provider{ARN: providerARN, ID: id})
	}
	return out, nil
}

// ProviderARN is the ARN IAM gives the OIDC provider of an issuer (its
// policy.ProviderID).
func ProviderARN(partition, account, providerID string) string {
	return "arn:" + partition + ":iam::" + account + ":oidc-provider/" + providerID
}

// DiscoverIssuer reads `issuer` from the API server's OIDC discovery document.
func DiscoverIssuer(ctx context.Context, cfg *rest.Config) (string, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = nil
	c.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.UnversionedRESTClientFor(c)
	if err != nil {
		return "", err
	}
	body, err := rc.Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("parsing the discovery document: %w", err)
	}
	if doc.Issuer == "" {
		return "", errors.New("the discovery document has no issuer")
	}
	return doc.Issuer, nil
}
