package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/podidentity/podidentity-operator/cmd/operator"
	"github.com/podidentity/podidentity-operator/internal/awsiam"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

const (
	bypassWebhookLabel = "test.podidentity.io/bypass-webhook"
	clusterName        = "envtest"
	rolePath           = "/podidentity/"
	// syncPeriod is long enough that a correction arriving well within it
	// must have come from a watch, and short enough for drift tests.
	syncPeriod = 4 * time.Second
	// podWebhookRegion is what the pod identity webhook writes as AWS_REGION.
	podWebhookRegion = "eu-west-1"
)

var (
	ctx       context.Context
	cancel    context.CancelFunc
	env       *envtest.Environment
	cfg       *rest.Config
	k8s       client.Client
	clientset *kubernetes.Clientset
	moto      *testenv.Moto
	proxy     *testenv.Proxy
	// iamc and stsc talk to moto directly, never through the operator's code
	// or the outage proxy.
	iamc *iam.Client
	stsc *sts.Client
	// issuerURL is the API server's issuer as its discovery document says.
	issuerURL   string
	providerARN string
	// metricsURL is the operator's secure metrics endpoint.
	metricsURL  string
	boundaryARN string
	operatorErr = make(chan error, 1)
	kcm         *testenv.ControllerManager
	eksEmu      *testenv.EKS
	eksc        *eks.Client
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "PodIdentityBinding controller suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.Background())

	var err error
	moto, err = testenv.StartMoto()
	Expect(err).NotTo(HaveOccurred())
	proxy, err = testenv.StartProxy(moto.URL)
	Expect(err).NotTo(HaveOccurred())
	// EKS Pod Identity: our emulator of the association API and eks-auth,
	// in front of moto (which has the clusters).
	eksEmu, err = testenv.StartEKS(moto.URL)
	Expect(err).NotTo(HaveOccurred())

	// The operator reaches IAM and STS through the standard SDK variables,
	// pointed at the proxy in front of moto.
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":      proxy.URL,
		"AWS_ENDPOINT_URL_EKS":  eksEmu.URL,
		"AWS_ACCESS_KEY_ID":     "testing",
		"AWS_SECRET_ACCESS_KEY": "testing",
		"AWS_REGION":            "us-east-1",
		"AWS_MAX_ATTEMPTS":      "2",
	} {
		Expect(os.Setenv(k, v)).To(Succeed())
	}
	creds := credentials.NewStaticCredentialsProvider("testing", "testing", "")
	awsCfg := aws.Config{Region: "us-east-1", Credentials: creds}
	iamc = iam.NewFromConfig(awsCfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(moto.URL) })
	stsc = sts.NewFromConfig(awsCfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(moto.URL) })
	eksc = eks.NewFromConfig(awsCfg, func(o *eks.Options) { o.BaseEndpoint = aws.String(eksEmu.URL) })
	_, err = eksc.CreateCluster(ctx, &eks.CreateClusterInput{Name: aws.String(clusterName),
		RoleArn:            aws.String("arn:aws:iam::" + testenv.Account + ":role/eks-cluster"),
		ResourcesVpcConfig: &ekstypes.VpcConfigRequest{SubnetIds: []string{"subnet-00000001"}}})
	Expect(err).NotTo(HaveOccurred())

	env, err = testenv.NewEnvironment()
	Expect(err).NotTo(HaveOccurred())
	cfg, err = env.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: operator.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	clientset, err = kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	eksEmu.Kube = clientset
	// The controllers a cluster runs beside the API server: namespaces are
	// deleted, owned objects garbage-collected, Deployments roll out.
	kcm, err = testenv.StartControllerManager(env)
	Expect(err).NotTo(HaveOccurred())

	// Namespaces labelled bypassWebhookLabel are not sent to the webhook, so
	// specs can check what the reconciler does when admission was bypassed
	// (webhook down, installed later, or failurePolicy Ignore).
	vwcs := &admissionregistrationv1.ValidatingWebhookConfigurationList{}
	Expect(k8s.List(ctx, vwcs)).To(Succeed())
	Expect(vwcs.Items).NotTo(BeEmpty())
	for i := range vwcs.Items {
		vwc := &vwcs.Items[i]
		for j := range vwc.Webhooks {
			vwc.Webhooks[j].NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: bypassWebhookLabel, Operator: metav1.LabelSelectorOpDoesNotExist}}}
		}
		Expect(k8s.Update(ctx, vwc)).To(Succeed())
	}

	// Read the issuer straight from the API server.
	raw, err := clientset.RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	Expect(err).NotTo(HaveOccurred())
	var disco struct {
		Issuer string `json:"issuer"`
	}
	Expect(json.Unmarshal(raw, &disco)).To(Succeed())
	Expect(disco.Issuer).To(HavePrefix("https://"))
	issuerURL = disco.Issuer

	// The cluster's OIDC provider, as an admin registers it: the issuer
	// exactly as the discovery document gives it. envtest's ends in "/", and
	// IAM keeps it in the provider's ARN and condition keys.
	providerARN, err = testenv.RegisterOIDCProvider(ctx, iamc, issuerURL)
	Expect(err).NotTo(HaveOccurred())

	boundary, err := iamc.CreatePolicy(ctx, &iam.CreatePolicyInput{
		PolicyName:     aws.String("podidentity-boundary"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:*","s3:*"],"Resource":"*"}]}`),
	})
	Expect(err).NotTo(HaveOccurred())
	boundaryARN = aws.ToString(boundary.Policy.Arn)

	opts := operator.Options{}
	opts.BindFlags(flagSet())
	opts.ClusterName = clusterName
	opts.EKSClusterName = clusterName // IRSA stays the default; EKSPodIdentity is per binding
	// moto's EKS cluster has an issuer of its own; this API server's tokens
	// carry envtest's (what DescribeCluster gives is used only without this).
	opts.OIDCIssuerURL = issuerURL
	opts.RolePath = rolePath
	opts.PermissionsBoundaryARN = boundaryARN
	opts.SyncPeriod = syncPeriod
	metricsPort, err := testenv.FreePort()
	Expect(err).NotTo(HaveOccurred())
	metricsURL = fmt.Sprintf("https://127.0.0.1:%d/metrics", metricsPort)
	opts.MetricsBindAddress = fmt.Sprintf("127.0.0.1:%d", metricsPort)
	opts.MetricsSecure = true
	wh := env.WebhookInstallOptions
	opts.EnableWebhooks = true
	opts.WebhookHost, opts.WebhookPort, opts.WebhookCertDir = wh.LocalServingHost, wh.LocalServingPort, wh.LocalServingCertDir
	// moto answers GetAccountAuthorizationDetails in one page: split it, so
	// every drift sweep in this suite follows IsTruncated and Marker.
	opts.WrapIAM = func(api awsiam.API) awsiam.API { return &testenv.PagedIAM{API: api, PageSize: 3} }
	opts.EnablePodIdentityWebhook = true
	opts.EnablePodRestarts = true
	opts.PodRestartMinInterval = 3 * time.Second
	opts.PodWebhookRegion = podWebhookRegion
	// The flag's own exclusion (the configuration's namespaceSelector already
	// keeps kube-system and the operator's namespace from being sent).
	opts.PodWebhookExcluded = []string{"kube-system", flagExcludedNamespace}
	opts.HealthProbeBindAddress = "0"
	opts.SkipControllerNameValidation = true
	operatorOpts = opts
	startOperator()
	Consistently(operatorErr, time.Second).ShouldNot(Receive())
})

// flagExcludedNamespace is excluded from the pod identity webhook by
// --pod-identity-webhook-excluded-namespaces only.
const flagExcludedNamespace = "excluded-by-flag"

// operatorOpts are the flags the suite's operator runs with.
var (
	operatorOpts   operator.Options
	operatorCancel context.CancelFunc
)

// startOperator runs the operator in this process until restartOperator or
// the end of the suite, and waits for its webhook server.
func startOperator() {
	var opCtx context.Context
	opCtx, operatorCancel = context.WithCancel(ctx)
	go func() {
		defer GinkgoRecover()
		operatorErr <- operator.Run(opCtx, cfg, operatorOpts, logf.Log.WithName("operator"))
	}()
	Expect(testenv.WaitForWebhook(ctx, env.WebhookInstallOptions, 30*time.Second)).To(Succeed())
}

// stopOperator stops the operator; startOperator starts a new one.
func stopOperator() {
	operatorCancel()
	Eventually(operatorErr, timeout).Should(Receive(Not(HaveOccurred())))
	operatorCancel = nil
}

// restartOperator stops the operator (as a pod restart would: caches and
// in-memory state are lost) and starts a new one.
func restartOperator() {
	stopOperator()
	startOperator()
}

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	kcm.Stop()
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
	proxy.Stop()
	eksEmu.Stop()
	moto.Stop()
})
