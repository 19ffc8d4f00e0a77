// Command demo runs the operator on an embedded local setup: a real
// kube-apiserver and etcd (envtest) and the moto IAM/STS emulator. It applies
// the sample binding from config/samples, prints the IAM role the operator
// made, and exchanges a ServiceAccount token for AWS credentials, the way a
// pod's SDK does under IRSA.
//
//	make demo                      # run the demo and exit
//	make demo DEMO_ARGS=-hold      # keep everything running; use the printed kubeconfig
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/cmd/operator"
	"github.com/podidentity/podidentity-operator/internal/policy"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

func main() {
	hold := flag.Bool("hold", false, "Keep the API server, moto and the operator running until interrupted.")
	verbose := flag.Bool("v", false, "Show the operator's logs.")
	mechanism := flag.String("identity", "irsa", "irsa, or eks-pod-identity: the binding uses EKS Pod Identity (an association in an emulated EKS cluster).")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *mechanism != "irsa" && *mechanism != "eks-pod-identity" {
		fmt.Fprintln(os.Stderr, "demo: -identity is irsa or eks-pod-identity")
		os.Exit(2)
	}
	if err := run(ctx, os.Stdout, *hold, *verbose, *mechanism == "eks-pod-identity"); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, hold, verbose, podIdentity bool) (err error) {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}

	say("==> starting moto (IAM and STS emulator)")
	moto, err := testenv.StartMoto()
	if err != nil {
		return err
	}
	defer moto.Stop()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": moto.URL, "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_REGION": "us-east-1",
	} {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	awsCfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("demo", "demo", "")}
	iamc := iam.NewFromConfig(awsCfg, func(o *iam.Options) { o.BaseEndpoint = aws.String(moto.URL) })
	stsc := sts.NewFromConfig(awsCfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(moto.URL) })

	say("==> starting kube-apiserver and etcd (envtest), installing the CRD from config/crd/bases")
	env, err := testenv.NewEnvironment()
	if err != nil {
		return err
	}
	cfg, err := env.Start()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Stop()) }()
	say("==> starting kube-controller-manager (namespace deletion, garbage collection, Deployments)")
	kcm, err := testenv.StartControllerManager(env)
	if err != nil {
		return err
	}
	defer kcm.Stop()
	k8s, err := client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	issuer, err := operator.DiscoverIssuer(ctx, cfg)
	if err != nil {
		return err
	}
	say("==> registering the cluster's issuer %s as an IAM OIDC provider", issuer)
	// Unchanged: IAM identifies the provider by the issuer exactly as tokens
	// carry it (envtest's ends in "/").
	providerARN, err := testenv.RegisterOIDCProvider(ctx, iamc, issuer)
	if err != nil {
		return err
	}
	say("    %s", providerARN)

	var eksEmu *testenv.EKS
	var eksc *eks.Client
	if podIdentity {
		say("==> starting an EKS emulator (pod identity associations, eks-auth) and creating the EKS cluster demo")
		if eksEmu, err = testenv.StartEKS(moto.URL); err != nil {
			return err
		}
		defer eksEmu.Stop()
		eksEmu.Kube = clientset
		if err := os.Setenv("AWS_ENDPOINT_URL_EKS", eksEmu.URL); err != nil {
			return err
		}
		eksc = eks.NewFromConfig(awsCfg, func(o *eks.Options) { o.BaseEndpoint = aws.String(eksEmu.URL) })
		if _, err := eksc.CreateCluster(ctx, &eks.CreateClusterInput{Name: aws.String("demo"), RoleArn: aws.String("arn:aws:iam::" + testenv.Account + ":role/eks-cluster"),
			ResourcesVpcConfig: &ekstypes.VpcConfigRequest{SubnetIds: []string{"subnet-00000001"}}}); err != nil {
			return err
		}
	}

	say("==> starting the operator: --cluster-name=demo")
	opts := operator.Options{}
	opts.BindFlags(flag.NewFlagSet("operator", flag.ContinueOnError))
	opts.ClusterName = "demo"
	// One operator per process, but the tests run the demo twice in one.
	opts.SkipControllerNameValidation = true
	if podIdentity {
		say("    and --eks-cluster-name=demo")
		opts.EKSClusterName = "demo"
		// The emulated EKS cluster's issuer is not this API server's.
		opts.OIDCIssuerURL = issuer
	}
	opts.MetricsBindAddress = "0"
	opts.HealthProbeBindAddress = "0"
	opts.SyncPeriod = 30 * time.Second
	opts.EnableWebhooks = true
	wh := env.WebhookInstallOptions
	opts.WebhookHost, opts.WebhookPort, opts.WebhookCertDir = wh.LocalServingHost, wh.LocalServingPort, wh.LocalServingCertDir
	logOut := io.Discard
	if verbose {
		logOut = os.Stderr
	}
	opCtx, stopOperator := context.WithCancel(ctx)
	defer stopOperator()
	opErr := make(chan error, 1)
	logger := zap.New(zap.WriteTo(logOut), zap.UseDevMode(true))
	// controller-runtime's global logger too: left unset, it prints a
	// warning with a stack trace when the demo ends.
	ctrllog.SetLogger(logger)
	go func() { opErr <- operator.Run(opCtx, cfg, opts, logger) }()

	samplePath := filepath.Join(root, "config", "samples", "iam_v1alpha1_podidentitybinding.yaml")
	raw, err := os.ReadFile(samplePath)
	if err != nil {
		return err
	}
	b := &v1alpha1.PodIdentityBinding{}
	if err := yaml.UnmarshalStrict(raw, b); err != nil {
		return fmt.Errorf("reading %s: %w", samplePath, err)
	}
	say("==> applying %s (%s/%s)", filepath.Join("config", "samples", filepath.Base(samplePath)), b.Namespace, b.Name)
	if podIdentity {
		say("    with spec.identity: EKSPodIdentity")
		b.Spec.Identity = v1alpha1.IdentityEKSPodIdentity
	}
	if err := testenv.WaitForWebhook(ctx, wh, 30*time.Second); err != nil {
		return err
	}
	if err := k8s.Create(ctx, b); err != nil {
		return err
	}

	say("==> waiting for Ready")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		c := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady)
		if c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == b.Generation {
			say("    Ready=True reason=%s: %s", c.Reason, c.Message)
			break
		}
		select {
		case err := <-opErr:
			return fmt.Errorf("operator stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("binding not Ready after 60s: %+v", b.Status.Conditions)
		}
	}

	role, err := iamc.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(b.Status.RoleName)})
	if err != nil {
		return err
	}
	say("==> IAM role %s", aws.ToString(role.Role.Arn))
	say("--- trust policy")
	say("%s", pretty(aws.ToString(role.Role.AssumeRolePolicyDocument)))
	pol, err := iamc.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: role.Role.RoleName, PolicyName: aws.String("podidentity-permissions")})
	if err != nil {
		return err
	}
	say("--- permission policy (inline, %s)", aws.ToString(pol.PolicyName))
	say("%s", pretty(aws.ToString(pol.PolicyDocument)))

	sa, err := clientset.CoreV1().ServiceAccounts(b.Namespace).Get(ctx, b.Spec.ServiceAccountName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	say("==> ServiceAccount %s/%s annotations:", sa.Namespace, sa.Name)
	for k, v := range sa.Annotations {
		say("    %s: %s", k, v)
	}
	if podIdentity {
		return podIdentityChain(ctx, say, eksc, eksEmu, clientset, sa, b, hold, env, root, moto, opErr)
	}

	say("==> requesting a token for the ServiceAccount (audience %s), as the kubelet does for a pod", policy.DefaultAudience)
	tr, err := clientset.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{policy.DefaultAudience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if claims, err := jwtClaims(tr.Status.Token); err == nil {
		say("    claims: iss=%v sub=%v aud=%v", claims["iss"], claims["sub"], claims["aud"])
	}
	say("==> STS AssumeRoleWithWebIdentity with that token, as the AWS SDK in the pod does")
	creds, err := stsc.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(b.Status.RoleArn), RoleSessionName: aws.String("demo"), WebIdentityToken: aws.String(tr.Status.Token),
	})
	if err != nil {
		return err
	}
	say("    temporary credentials: AccessKeyId=%s, expires %s", aws.ToString(creds.Credentials.AccessKeyId), aws.ToTime(creds.Credentials.Expiration).Format(time.RFC3339))
	say("    assumed role: %s", aws.ToString(creds.AssumedRoleUser.Arn))

	return holdRunning(ctx, say, hold, env, root, moto, opErr)
}

// holdRunning ends the demo, or with -hold keeps everything running and
// writes a kubeconfig for it.
func holdRunning(ctx context.Context, say func(string, ...any), hold bool, env *envtest.Environment, root string, moto *testenv.Moto, opErr chan error) error {
	if !hold {
		say("==> done (run with DEMO_ARGS=-hold to keep it running)")
		return nil
	}
	path := filepath.Join(root, "bin", "demo.kubeconfig")
	if _, err := testenv.AdminKubeconfig(env, "demo-admin", path); err != nil {
		return err
	}
	say("==> running; try:\n    export KUBECONFIG=%s\n    kubectl get pib -A\n    AWS_ENDPOINT_URL=%s (moto)\n  Ctrl-C to stop.", path, moto.URL)
	select {
	case <-ctx.Done():
		return nil
	case err := <-opErr:
		return err
	}
}

func pretty(doc string) string {
	text, err := url.PathUnescape(doc)
	if err != nil {
		return doc
	}
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return text
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func jwtClaims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(payload, &m)
}

// podIdentityChain shows what EKS Pod Identity does with the binding: the
// association, then a token of the ServiceAccount for pods.eks.amazonaws.com
// exchanged with eks-auth AssumeRoleForPodIdentity (as the Pod Identity
// Agent does), and the caller identity of the credentials it returns.
func podIdentityChain(ctx context.Context, say func(string, ...any), eksc *eks.Client, eksEmu *testenv.EKS, clientset *kubernetes.Clientset,
	sa *corev1.ServiceAccount, b *v1alpha1.PodIdentityBinding, hold bool, env *envtest.Environment, root string, moto *testenv.Moto, opErr chan error) error {
	a, err := eksc.DescribePodIdentityAssociation(ctx, &eks.DescribePodIdentityAssociationInput{ClusterName: aws.String("demo"), AssociationId: aws.String(b.Status.AssociationID)})
	if err != nil {
		return err
	}
	say("==> EKS pod identity association %s: %s/%s -> %s (session tags disabled: %v, tags %v)", aws.ToString(a.Association.AssociationId),
		aws.ToString(a.Association.Namespace), aws.ToString(a.Association.ServiceAccount), aws.ToString(a.Association.RoleArn),
		aws.ToBool(a.Association.DisableSessionTags), a.Association.Tags)
	say("==> requesting a token for the ServiceAccount (audience %s), as the kubelet does for a pod", testenv.PodIdentityAudience)
	tr, err := clientset.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{testenv.PodIdentityAudience}}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	say("==> eks-auth AssumeRoleForPodIdentity with that token, as the EKS Pod Identity Agent does")
	body, _ := json.Marshal(map[string]string{"token": tr.Status.Token})
	resp, err := http.Post(eksEmu.URL+"/clusters/demo/assume-role-for-pod-identity", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Credentials struct{ AccessKeyID, SecretAccessKey, SessionToken string } `json:"credentials"`
		Message     string                                                      `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("AssumeRoleForPodIdentity: %d %s %v", resp.StatusCode, out.Message, err)
	}
	say("    temporary credentials: AccessKeyId=%s", out.Credentials.AccessKeyID)
	who, err := sts.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(moto.URL),
		Credentials: credentials.NewStaticCredentialsProvider(out.Credentials.AccessKeyID, out.Credentials.SecretAccessKey, out.Credentials.SessionToken)}).
		GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return err
	}
	say("    caller identity: %s", aws.ToString(who.Arn))
	return holdRunning(ctx, say, hold, env, root, moto, opErr)
}
