package e2e_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/internal/testenv"
)

const (
	operatorNS = "podidentity-system"
	operatorSA = "podidentity-controller-manager"
)

// cluster is one API server with the issuer of the user's cluster, and a
// terminal whose kubectl and helm talk to it as an administrator.
type cluster struct {
	cfg        *rest.Config
	kube       *kubernetes.Clientset
	dyn        dynamic.Interface
	kubeconfig string
	sh         shell
}

func startCluster(t *testing.T, issuer string, sh shell) *cluster {
	t.Helper()
	env := &envtest.Environment{}
	if issuer != "" {
		// Tokens carry the EKS cluster's issuer, as they do on EKS.
		env.ControlPlane.GetAPIServer().Configure().Set("service-account-issuer", issuer)
	}
	if _, err := env.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	// The cluster's own controllers: token Secrets are filled, owned
	// objects garbage-collected.
	kcm, err := testenv.StartControllerManager(env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kcm.Stop)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	admin, err := testenv.AdminKubeconfig(env, "admin", path)
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(admin.Config())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(admin.Config())
	if err != nil {
		t.Fatal(err)
	}
	sh.env = append(append([]string{}, sh.env...), "KUBECONFIG="+path)
	return &cluster{cfg: admin.Config(), kube: kube, dyn: dyn, kubeconfig: path, sh: sh}
}

// installPath is one install path the README documents, with what it
// must create.
type installPath struct {
	name string
	// helmRelease names objects <release>-<name> where config/ names
	// them podidentity-<name> (the README says so); empty for kustomize.
	helmRelease string
	// webhook: the path installs the validating webhook with a
	// self-managed certificate; olm: OLM serves the webhook's certificate.
	webhook, olm bool
	// prometheus: the path includes the prometheus component (its
	// ServiceMonitor's scraper ServiceAccount) and the Grafana dashboard.
	prometheus bool
	install    func(t *testing.T, c *cluster, s setup)
}

// TestDocumentedInstallPaths is the README's "Deploying on EKS", run as a
// user would: the EKS cluster exists; the IAM setup commands run as written
// with the AWS CLI against moto; then for each install path a fresh API
// server, the path's own commands, and the operator binary started as that
// path's pod would run: with the Deployment's arguments and variables, as
// its ServiceAccount (so with the path's RBAC), and with AWS credentials
// the SDK gets by AssumeRoleWithWebIdentity for that ServiceAccount's token
// and the role the setup created. The role's trust is evaluated against the
// real token (moto does not), and a binding must become Ready.
func TestDocumentedInstallPaths(t *testing.T) {
	root, readme, moto, sh := newBed(t)
	manager := filepath.Join(t.TempDir(), "manager")
	if out, err := exec.Command("go", "build", "-o", manager, root).CombinedOutput(); err != nil {
		t.Fatalf("building the operator: %v\n%s", err, out)
	}
	// The user's EKS cluster, which exists before anything here.
	sh.run(t, `aws --region us-east-1 eks create-cluster --name prod --role-arn arn:aws:iam::123456789012:role/eks-cluster \
  --resources-vpc-config subnetIds=subnet-00000001 >/dev/null`)
	s := runSetup(t, sh, block(t, readme, "sh", "# Setup on EKS: which cluster, and its service-account issuer"),
		block(t, readme, "sh", "# Setup: OIDC provider, permissions boundary, the operator's role"))
	if !strings.HasPrefix(s.Issuer, "https://oidc.eks.us-east-1.amazonaws.com/id/") || s.Cluster != "prod" {
		t.Fatalf("the setup read cluster %q issuer %q", s.Cluster, s.Issuer)
	}
	awsIAM := iamClient(t, moto.URL)
	checkIAMSetup(t, awsIAM, s)

	gitops, err := os.ReadFile(filepath.Join(root, "docs", "gitops.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths := []installPath{
		{name: "helm", helmRelease: "podidentity-operator", webhook: true, install: func(t *testing.T, c *cluster, s setup) {
			cmd := block(t, readme, "sh", "helm install podidentity-operator charts/podidentity-operator -n podidentity-system --create-namespace \\")
			c.sh.run(t, cmd, s.env()...)
		}},
		{name: "install.yaml", webhook: true, install: func(t *testing.T, c *cluster, s setup) {
			// dist/install.yaml exactly as `make release` writes it.
			dir := t.TempDir()
			gen := exec.Command("go", "run", "./hack/bundle", "-version", "0.1.0", "-image",
				"ghcr.io/podidentity/podidentity-operator:v0.1.0", "-out", filepath.Join(dir, "bundle"), "-installer",
				filepath.Join(dir, "install.yaml"))
			gen.Dir = root
			if out, err := gen.CombinedOutput(); err != nil {
				t.Fatalf("hack/bundle: %v\n%s", err, out)
			}
			cmd := block(t, readme, "sh", "kubectl apply --server-side -f install.yaml")
			c.sh.run(t, "cd "+dir+"\n"+cmd, s.env()...)
		}},
		{name: "kustomize", webhook: true, prometheus: true, install: func(t *testing.T, c *cluster, s setup) {
			// docs/gitops.md's kustomization with this checkout for the
			// remote base, and the user's values for the example's.
			example := block(t, string(gitops), "yaml", "# kustomization.yaml")
			dir := t.TempDir()
			config, err := filepath.Rel(dir, filepath.Join(root, "config")) // kustomize takes no absolute bases
			if err != nil {
				t.Fatal(err)
			}
			example = substitute(t, "docs/gitops.md's kustomization", example, map[string]string{
				"https://github.com/podidentity/podidentity-operator//config/":                                     config + "/",
				"value: prod-eu-west-1\n":                                                                          "value: " + s.Cluster + "\n",
				"value: arn:aws:iam::111122223333:policy/podidentity-boundary\n":                                   "value: " + s.BoundaryARN + "\n",
				"eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/podidentity-operator-prod-eu-west-1\n": "eks.amazonaws.com/role-arn: " + s.OperatorRoleARN + "\n",
			})
			example = regexp.MustCompile(`\?ref=v[0-9.]+`).ReplaceAllString(example, "")
			if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(example), 0o600); err != nil {
				t.Fatal(err)
			}
			// The example uses the prometheus component: the Prometheus
			// Operator's CRDs come first, as the README's table says.
			if err := testenv.InstallPrerequisiteCRDs(c.cfg); err != nil {
				t.Fatal(err)
			}
			c.sh.run(t, "kubectl apply --server-side -k "+dir)
		}},
		{name: "olm", olm: true, install: func(t *testing.T, c *cluster, s setup) {
			// The README's Subscription with the user's values for the example's.
			sub := block(t, readme, "yaml", "# Subscription (excerpt)")
			sub = substitute(t, "the README's Subscription", sub, map[string]string{"value: prod\n": "value: " + s.Cluster + "\n",
				"value: arn:aws:iam::111122223333:policy/podidentity-boundary-prod\n": "value: " + s.BoundaryARN + "\n"})
			olmInstall(t, c, filepath.Join(root, "bundle", "manifests"), sub)
			cmd := block(t, readme, "sh", "kubectl -n podidentity-system annotate serviceaccount podidentity-controller-manager \\")
			c.sh.run(t, cmd, s.env()...)
		}},
	}
	names := readmeObjectNames(t, readme+string(gitops))
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			c := startCluster(t, s.Issuer, sh)
			p.install(t, c, s)
			checkPath(t, c, p, s, names, awsIAM, manager, moto.URL)
		})
	}
}

// readmeObjectNames are the Kubernetes object names the docs mention,
// those of config/ (podidentity-...), less the names of things that are
// not Kubernetes objects.
func readmeObjectNames(t *testing.T, docs string) []string {
	t.Helper()
	notObjects := map[string]string{
		"podidentity-operator":           "the chart, the Helm release, the Argo CD Application, the IAM role's name prefix",
		"podidentity-operator-x.y.z.tgz": "the chart package", "podidentity-operator-x.y.z.cdx.json": "the release's bill of materials",

		"podidentity-operator.json":           "the Grafana dashboard file",
		"podidentity-boundary":                "the IAM boundary policy's name prefix",
		"podidentity-boundary-prod":           "an IAM policy",
		"podidentity-boundary-prod-eu-west-1": "an IAM policy",
		"podidentity-aws":                     "the static-credentials Secret a user creates, not an install path",
		"podidentity-permissions":             "the IAM inline policy of each role",
		"podidentity-operator-prod-eu-west-1": "an IAM role",
		"podidentity-operator-prod":           "an IAM role",
		"podidentity-pod-identity":            "the operator role's inline policy for EKS Pod Identity",
	}
	seen := map[string]bool{}
	var out []string
	for _, n := range regexp.MustCompile(`podidentity-[a-z0-9.-]*[a-z0-9]`).FindAllString(docs, -1) {
		if _, skip := notObjects[n]; skip || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(out) < 5 {
		t.Fatalf("the docs name only %v", out)
	}
	return out
}

// checkPath checks what one install path created and then runs the
// operator as that path's pod.
func checkPath(t *testing.T, c *cluster, p installPath, s setup, names []string, awsIAM *iam.Client, manager, awsEndpoint string) {
	ctx := context.Background()
	sa, err := c.kube.CoreV1().ServiceAccounts(operatorNS).Get(ctx, operatorSA, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the path created no ServiceAccount %s/%s (the trusted one): %v", operatorNS, operatorSA, err)
	}
	if got := sa.Annotations["eks.amazonaws.com/role-arn"]; got != s.OperatorRoleARN {
		t.Fatalf("ServiceAccount role-arn annotation %q, want the setup's role %q", got, s.OperatorRoleARN)
	}
	deploys, err := c.kube.AppsV1().Deployments(operatorNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=podidentity-operator"})
	if err != nil || len(deploys.Items) != 1 {
		t.Fatalf("want one Deployment labelled app.kubernetes.io/name=podidentity-operator: %v %d", err, len(deploys.Items))
	}
	deploy := deploys.Items[0]
	if got := deploy.Spec.Template.Spec.ServiceAccountName; got != operatorSA {
		t.Fatalf("the Deployment runs as %q", got)
	}

	// The trust, as IAM evaluates it, for the token this ServiceAccount's
	// pods get, and not for another ServiceAccount's.
	roleName := s.OperatorRoleARN[strings.LastIndex(s.OperatorRoleARN, "/")+1:]
	role, err := awsIAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &roleName})
	if err != nil {
		t.Fatal(err)
	}
	trust := aws.ToString(role.Role.AssumeRolePolicyDocument)
	stsToken := token(t, c, operatorSA, "sts.amazonaws.com")
	if !trustAllows(t, trust, testenv.Account, tokenClaims(t, stsToken)) {
		t.Fatalf("the operator's role does not trust the token of %s/%s: claims %+v", operatorNS, operatorSA, tokenClaims(t, stsToken))
	}
	if _, err := c.kube.CoreV1().ServiceAccounts(operatorNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "someone-else"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if trustAllows(t, trust, testenv.Account, tokenClaims(t, token(t, c, "someone-else", "sts.amazonaws.com"))) {
		t.Fatal("the operator's role trusts another ServiceAccount of its namespace")
	}

	// The Deployment's two replicas; leader election makes one reconcile.
	if r := deploy.Spec.Replicas; r == nil || *r != 2 {
		t.Fatalf("the Deployment runs %v replicas, want 2", r)
	}
	op := startOperator(t, c, deploy.Spec.Template.Spec.Containers[0], p, sa.Annotations["eks.amazonaws.com/role-arn"], stsToken, manager, awsEndpoint)
	second := *deploy.Spec.Template.Spec.Containers[0].DeepCopy()
	if p.helmRelease != "" {
		// The README's EKS Pod Identity section: --eks-cluster-name (the
		// chart's podIdentity.eksClusterName). The cluster's issuer then
		// comes from eks:DescribeCluster; it must be the one the setup
		// registered.
		second.Args = append(second.Args, "--eks-cluster-name="+s.Cluster)
	}
	op2 := startOperator(t, c, second, p, sa.Annotations["eks.amazonaws.com/role-arn"], stsToken, manager, awsEndpoint)
	if p.helmRelease != "" {
		raw, _ := os.ReadFile(op2.logPath)
		if want := `"issuer":"` + s.Issuer + `"`; !strings.Contains(string(raw), `"msg":"EKS Pod Identity"`) || !strings.Contains(string(raw), want) {
			t.Errorf("with --eks-cluster-name the operator did not take the issuer %s from eks:DescribeCluster:\n%s", s.Issuer, tail(string(raw), 3000))
		}
	}

	// The webhook's Service has no endpoints here (no pods run): once the
	// operator has injected the CA (its self-managed certificate, with this
	// path's RBAC), the webhook configurations go, so the API server does
	// not call an address nothing serves.
	present := map[string]bool{}
	if p.webhook {
		testenv.Eventually(t, 60*time.Second, "the operator injects its CA into the webhook configuration", func() error {
			l, err := c.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
			if err != nil || len(l.Items) != 1 {
				return fmt.Errorf("%v %d configurations", err, len(l.Items))
			}
			for _, w := range l.Items[0].Webhooks {
				if len(w.ClientConfig.CABundle) == 0 {
					return fmt.Errorf("webhook %s has no CA yet", w.Name)
				}
			}
			for n := range objectNames(t, c) {
				present[n] = true
			}
			return c.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, l.Items[0].Name, metav1.DeleteOptions{})
		})
	}

	// A team's binding becomes Ready, and its role is in IAM with the
	// setup's boundary and trusting the team's ServiceAccount.
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "orders"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn := c.dyn
	binding := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`apiVersion: iam.podidentity.io/v1alpha1
kind: PodIdentityBinding
metadata: {name: orders-reader, namespace: orders}
spec:
  serviceAccountName: orders-api
  permissions:
  - actions: [dynamodb:GetItem]
    resources: ["arn:aws:dynamodb:us-east-1:123456789012:table/orders"]
`), &binding.Object); err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "iam.podidentity.io", Version: "v1alpha1", Resource: "podidentitybindings"}
	if _, err := dyn.Resource(gvr).Namespace("orders").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var roleARN string
	testenv.Eventually(t, 90*time.Second, "the binding becomes Ready (operator log: "+op.logPath+")", func() error {
		got, err := dyn.Resource(gvr).Namespace("orders").Get(ctx, "orders-reader", metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, ci := range conds {
			cond, _ := ci.(map[string]any)
			if cond["type"] == "Ready" {
				if cond["status"] != "True" {
					return fmt.Errorf("Ready=%v %v: %v", cond["status"], cond["reason"], cond["message"])
				}
				roleARN, _, _ = unstructured.NestedString(got.Object, "status", "roleArn")
				return nil
			}
		}
		return fmt.Errorf("no Ready condition yet")
	})
	checkWatchConnections(t, "/apis/iam.podidentity.io/v1alpha1/namespaces/orders/podidentitybindings/orders-reader/status", op, op2)
	appRole, err := awsIAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(roleARN[strings.LastIndex(roleARN, "/")+1:])})
	if err != nil {
		t.Fatalf("the binding's role %q: %v", roleARN, err)
	}
	if b := appRole.Role.PermissionsBoundary; b == nil || aws.ToString(b.PermissionsBoundaryArn) != s.BoundaryARN {
		t.Errorf("the binding's role has boundary %+v, want %s", b, s.BoundaryARN)
	}
	appTrust := aws.ToString(appRole.Role.AssumeRolePolicyDocument)
	if !trustAllows(t, appTrust, testenv.Account, claims{Iss: s.Issuer, Sub: "system:serviceaccount:orders:orders-api", Aud: "sts.amazonaws.com"}) ||
		trustAllows(t, appTrust, testenv.Account, claims{Iss: s.Issuer, Sub: "system:serviceaccount:orders:other", Aud: "sts.amazonaws.com"}) {
		t.Errorf("the binding's role trusts the wrong tokens: %+v", appTrust)
	}
	// The names the docs mention exist, with the path's naming.
	for n := range objectNames(t, c) {
		present[n] = true
	}
	for _, n := range names {
		// The docs name Helm's objects for the release podidentity-operator;
		// config/ names the same objects podidentity-<name>.
		n = strings.Replace(n, "podidentity-operator-", "podidentity-", 1)
		want := n
		if p.helmRelease != "" && n != operatorNS && n != operatorSA {
			want = p.helmRelease + "-" + strings.TrimPrefix(n, "podidentity-")
		}
		webhookOnly := strings.Contains(n, "webhook")
		switch {
		case strings.Contains(n, "mutating"):
			continue // the pod identity webhook, in no path here (tested in the controllers suite)
		case webhookOnly && p.olm:
			continue // OLM names the webhook and its certificate itself
		case webhookOnly && !p.webhook:
			continue
		case (strings.Contains(n, "metrics-scraper") || strings.Contains(n, "grafana-dashboard")) && !p.prometheus:
			continue
		case strings.HasSuffix(n, ".iam.podidentity.io") && p.helmRelease != "":
			want = n // the Lease: the chart keeps config/'s leader election ID
		}
		if !present[want] {
			t.Errorf("the docs mention %q; this path has no object %q", n, want)
		}
	}

	// Metrics sum correctly over the replicas: Prometheus, bound to the
	// metrics reader ClusterRole as the README says, scrapes both, and the
	// bindings gauge adds up to the one binding (only the leader exports it).
	reader := "podidentity-metrics-reader"
	if p.helmRelease != "" {
		reader = p.helmRelease + "-metrics-reader"
	}
	var scrapeToken string
	if p.prometheus {
		// What Prometheus uses: the token Secret the ServiceMonitor names,
		// filled by kube-controller-manager's token controller.
		sm, err := c.dyn.Resource(schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"}).
			Namespace(operatorNS).Get(ctx, "podidentity-controller-manager-metrics-monitor", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		secretName, _, _ := unstructured.NestedString(endpoints[0].(map[string]any), "authorization", "credentials", "name")
		secretKey, _, _ := unstructured.NestedString(endpoints[0].(map[string]any), "authorization", "credentials", "key")
		testenv.Eventually(t, 30*time.Second, "the ServiceMonitor's token Secret "+secretName+" filled", func() error {
			secret, err := c.kube.CoreV1().Secrets(operatorNS).Get(ctx, secretName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if scrapeToken = string(secret.Data[secretKey]); scrapeToken == "" {
				return fmt.Errorf("no %q yet", secretKey)
			}
			return nil
		})
	} else {
		scrapeToken = scraper(t, c, reader)
	}
	testenv.Eventually(t, 30*time.Second, "podidentity_bindings summed over both replicas", func() error {
		total := 0.0
		for _, o := range []*operator{op, op2} {
			v, err := scrapeSum(o.metricsPort, scrapeToken, "podidentity_bindings")
			if err != nil {
				return err
			}
			total += v
		}
		if total != 1 {
			return fmt.Errorf("sum(podidentity_bindings) over the replicas = %v, want 1", total)
		}
		return nil
	})

	sa, err = c.kube.CoreV1().ServiceAccounts("orders").Get(ctx, "orders-api", metav1.GetOptions{})
	if err != nil || sa.Annotations["eks.amazonaws.com/role-arn"] != roleARN {
		t.Errorf("ServiceAccount orders/orders-api: %v %v", err, sa.GetAnnotations())
	}
}

// scraper is Prometheus's ServiceAccount bound to the metrics reader
// ClusterRole, and its token.
func scraper(t *testing.T, c *cluster, clusterRole string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kube.CoreV1().ServiceAccounts("monitoring").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-podidentity"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: clusterRole},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: "monitoring"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := c.kube.CoreV1().ServiceAccounts("monitoring").CreateToken(ctx, "prometheus", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// scrapeSum scrapes one replica's metrics over HTTPS with a bearer token
// and sums the samples of one metric.
func scrapeSum(port int, bearer, metric string) (float64, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/metrics", port), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	// The replicas serve a self-signed certificate (no metrics certificate
	// configured on these paths); what is under test is the sum.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape :%d: %d %s", port, resp.StatusCode, body)
	}
	total := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

// objectNames are the names of the objects of the kinds an install path
// creates or the operator creates at start (Secret, Lease).
func objectNames(t *testing.T, c *cluster) map[string]bool {
	t.Helper()
	dyn := c.dyn
	out := map[string]bool{}
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "namespaces"}, {Version: "v1", Resource: "serviceaccounts"}, {Version: "v1", Resource: "services"},
		{Version: "v1", Resource: "secrets"}, {Version: "v1", Resource: "configmaps"}, {Group: "apps", Version: "v1", Resource: "deployments"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"},
		{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"},
		{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
		{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"},
		{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	} {
		l, err := dyn.Resource(gvr).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range l.Items {
			out[o.GetName()] = true
		}
	}
	return out
}

// token is a service-account token for a ServiceAccount of the operator's
// namespace, as the kubelet projects it.
func token(t *testing.T, c *cluster, sa string, audiences ...string) string {
	t.Helper()
	tr, err := c.kube.CoreV1().ServiceAccounts(operatorNS).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// operator is the operator binary running as one install path's pod.
type operator struct {
	cmd         *exec.Cmd
	logPath     string
	metricsPort int
	// api: the pod's requests to the API server, by connection.
	api *testenv.APIProxy
}

// startOperator runs the binary as the Deployment's container would run:
// its arguments and variables (downward API resolved), the ServiceAccount's
// API token and namespace, and the variables AWS's pod identity webhook
// injects for the ServiceAccount's role annotation. What differs from a pod
// is only the network: listeners on free loopback ports, AWS at moto.
func startOperator(t *testing.T, c *cluster, ctr corev1.Container, p installPath, roleARN, stsToken, manager, awsEndpoint string) *operator {
	t.Helper()
	dir := t.TempDir()
	probePort, metricsPort := freePort(t), freePort(t)
	// The pod's connections to the API server, seen through a proxy that
	// only records them.
	api, err := testenv.StartAPIProxy(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	var args []string
	hasWebhookPort := false
	for _, a := range ctr.Args {
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "--metrics-bind-address":
			a = fmt.Sprintf("%s=127.0.0.1:%d", name, metricsPort)
		case "--health-probe-bind-address":
			a = fmt.Sprintf("%s=127.0.0.1:%d", name, probePort)
		case "--webhook-port":
			a, hasWebhookPort = fmt.Sprintf("%s=%d", name, freePort(t)), true
		case "--webhook-cert-dir", "--metrics-cert-path":
			// A volume of the pod: under the test's directory.
			_, path, _ := strings.Cut(a, "=")
			a = name + "=" + filepath.Join(dir, "volumes", path)
		}
		args = append(args, a)
	}
	if !hasWebhookPort {
		args = append(args, fmt.Sprintf("--webhook-port=%d", freePort(t)))
	}
	// The pod's namespace file, which leader election reads in a pod.
	args = append(args, "--leader-election-namespace="+operatorNS)

	env := []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + dir, "HOME=" + dir,
		"AWS_ENDPOINT_URL=" + awsEndpoint, "AWS_ENDPOINT_URL_STS=" + awsEndpoint,
		"KUBECONFIG=" + saKubeconfig(t, c, api, dir)}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env = append(env, e.Name+"="+operatorNS)
		default:
			t.Fatalf("variable %s: the test does not resolve %+v", e.Name, e.ValueFrom)
		}
	}
	// What the pod identity webhook adds for the annotated ServiceAccount.
	tokenFile := filepath.Join(dir, "aws-token")
	if err := os.WriteFile(tokenFile, []byte(stsToken), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(env, "AWS_ROLE_ARN="+roleARN, "AWS_WEB_IDENTITY_TOKEN_FILE="+tokenFile)
	if p.olm {
		// OLM mounts the webhook's serving certificate here.
		certDir := filepath.Join(dir, "k8s-webhook-server", "serving-certs")
		_, certPEM, keyPEM := testenv.SelfSignedCert("podidentity-controller-manager-service.podidentity-system.svc")
		if err := os.MkdirAll(certDir, 0o700); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(certDir, "tls.crt"), certPEM, 0o600)
		_ = os.WriteFile(filepath.Join(certDir, "tls.key"), keyPEM, 0o600)
	}
	logs, err := os.Create(filepath.Join(dir, "operator.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(manager, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	op := &operator{cmd: cmd, logPath: logs.Name(), metricsPort: metricsPort, api: api}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			raw, _ := os.ReadFile(logs.Name())
			t.Logf("operator log (args %v):\n%s", args, tail(string(raw), 6000))
		}
	})
	testenv.Eventually(t, 60*time.Second, "the operator's readiness probe (log "+logs.Name()+")", func() error {
		if cmd.ProcessState != nil {
			return fmt.Errorf("exited: %v", cmd.ProcessState)
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz?verbose", probePort))
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", resp.StatusCode, body)
		}
		// With the webhook, readiness includes its server having started.
		if slices.Contains(args, "--enable-webhooks") && !strings.Contains(string(body), "[+]webhook ok") {
			return fmt.Errorf("readyz does not check the webhook server: %s", body)
		}
		return nil
	})
	return op
}

// checkWatchConnections: each replica's watches reach the API server on
// other connections than its writes (decision 100), so the answer to a
// write never queues behind watch events in one HTTP/2 connection. The
// leader's write of statusPath shows a write was made; several watches on
// one connection show the proxy sees requests share connections, so apart
// means apart.
func checkWatchConnections(t *testing.T, statusPath string, ops ...*operator) {
	t.Helper()
	wroteStatus, shared := false, false
	for i, op := range ops {
		requests := op.api.Requests()
		watches := map[string]int{}
		for _, r := range requests {
			if r.Watch {
				watches[r.Conn]++
				shared = shared || watches[r.Conn] > 1
			}
		}
		for _, r := range requests {
			if !r.IsWrite() {
				continue
			}
			wroteStatus = wroteStatus || r.Path == statusPath
			if watches[r.Conn] > 0 {
				t.Errorf("replica %d: %s %s went on a connection that carries %d watches", i, r.Method, r.Path, watches[r.Conn])
			}
		}
	}
	if !wroteStatus {
		t.Errorf("no replica wrote %s through the proxy", statusPath)
	}
	if !shared {
		t.Error("no connection carried two watches: the proxy does not see HTTP/2 multiplexing, so the check above proves nothing")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// saKubeconfig is the in-cluster configuration of a pod of the operator:
// the API server (here through the proxy), its CA, and a token of the
// operator's ServiceAccount.
func saKubeconfig(t *testing.T, c *cluster, api *testenv.APIProxy, dir string) string {
	t.Helper()
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "pod",
		"clusters": []any{map[string]any{"name": "c", "cluster": map[string]any{"server": api.URL,
			"certificate-authority-data": api.CAData}}},
		"users":    []any{map[string]any{"name": "sa", "user": map[string]any{"token": token(t, c, operatorSA)}}},
		"contexts": []any{map[string]any{"name": "pod", "context": map[string]any{"cluster": "c", "user": "sa"}}},
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// olmInstall does what OLM does with the bundle for a Subscription in the
// operator's namespace: the CRDs and other manifests, the ServiceAccount,
// the CSV's permissions as Roles and ClusterRoles bound to it, and the
// CSV's Deployment with the Subscription's spec.config.env added.
func olmInstall(t *testing.T, c *cluster, manifests, subscription string) {
	t.Helper()
	ctx := context.Background()
	var sub struct {
		Spec struct {
			Config struct {
				Env []corev1.EnvVar `json:"env"`
			} `json:"config"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(subscription), &sub); err != nil {
		t.Fatal(err)
	}
	c.sh.run(t, "kubectl create namespace "+operatorNS)
	entries, err := os.ReadDir(manifests)
	if err != nil {
		t.Fatal(err)
	}
	var csvFile string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".clusterserviceversion.yaml") {
			csvFile = filepath.Join(manifests, e.Name())
			continue
		}
		c.sh.run(t, "kubectl apply --server-side -n "+operatorNS+" -f "+filepath.Join(manifests, e.Name()))
	}
	raw, err := os.ReadFile(csvFile)
	if err != nil {
		t.Fatal(err)
	}
	type permission struct {
		ServiceAccountName string              `json:"serviceAccountName"`
		Rules              []rbacv1.PolicyRule `json:"rules"`
	}
	var csv struct {
		Spec struct {
			Install struct {
				Spec struct {
					ClusterPermissions []permission `json:"clusterPermissions"`
					Permissions        []permission `json:"permissions"`
					Deployments        []struct {
						Name  string            `json:"name"`
						Label map[string]string `json:"label"`
						Spec  json.RawMessage   `json:"spec"`
					} `json:"deployments"`
				} `json:"spec"`
			} `json:"install"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &csv); err != nil {
		t.Fatal(err)
	}
	spec := csv.Spec.Install.Spec
	for i, p := range spec.ClusterPermissions {
		if _, err := c.kube.CoreV1().ServiceAccounts(operatorNS).Get(ctx, p.ServiceAccountName, metav1.GetOptions{}); err != nil {
			if _, err := c.kube.CoreV1().ServiceAccounts(operatorNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: p.ServiceAccountName}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		name := fmt.Sprintf("olm-cluster-%d", i)
		if _, err := c.kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: p.Rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: p.ServiceAccountName, Namespace: operatorNS}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range spec.Permissions {
		name := fmt.Sprintf("olm-%d", i)
		if _, err := c.kube.RbacV1().Roles(operatorNS).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: p.Rules}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.kube.RbacV1().RoleBindings(operatorNS).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: p.ServiceAccountName, Namespace: operatorNS}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range spec.Deployments {
		deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Labels: d.Label}}
		if err := json.Unmarshal(d.Spec, &deploy.Spec); err != nil {
			t.Fatal(err)
		}
		for i := range deploy.Spec.Template.Spec.Containers {
			deploy.Spec.Template.Spec.Containers[i].Env = append(deploy.Spec.Template.Spec.Containers[i].Env, sub.Spec.Config.Env...)
		}
		if _, err := c.kube.AppsV1().Deployments(operatorNS).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDocumentedSetupOnAnyCluster runs the README's IAM setup for clusters
// other than EKS, as written: the issuer read from the API server with
// kubectl, then the shared commands. The provider is the issuer exactly
// as the cluster's tokens carry it, and the operator's role trusts the
// token of its ServiceAccount on that cluster.
func TestDocumentedSetupOnAnyCluster(t *testing.T) {
	_, readme, moto, sh := newBed(t)
	c := startCluster(t, "", sh)
	s := runSetup(t, c.sh, block(t, readme, "sh", "# Setup on any cluster: which cluster, and its service-account issuer"),
		block(t, readme, "sh", "# Setup: OIDC provider, permissions boundary, the operator's role"))
	awsIAM := iamClient(t, moto.URL)
	checkIAMSetup(t, awsIAM, s)

	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{operatorSA, "someone-else"} {
		if _, err := c.kube.CoreV1().ServiceAccounts(operatorNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	role, err := awsIAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("podidentity-operator-" + s.Cluster)})
	if err != nil {
		t.Fatal(err)
	}
	trust := aws.ToString(role.Role.AssumeRolePolicyDocument)
	own := tokenClaims(t, token(t, c, operatorSA, "sts.amazonaws.com"))
	if own.Iss != s.Issuer {
		t.Fatalf("tokens carry iss %q; the setup registered %q", own.Iss, s.Issuer)
	}
	if !trustAllows(t, trust, testenv.Account, own) {
		t.Errorf("the operator's role does not trust its ServiceAccount's token %+v", own)
	}
	if other := tokenClaims(t, token(t, c, "someone-else", "sts.amazonaws.com")); trustAllows(t, trust, testenv.Account, other) {
		t.Errorf("the operator's role trusts another ServiceAccount's token %+v", other)
	}
}

// TestDocumentedPodIdentityPolicy runs the README's EKS Pod Identity
// command after its IAM setup, as written, and reads back the policy it
// attached: config/iam/operator-policy-pod-identity.json with every
// placeholder filled for this account and cluster.
func TestDocumentedPodIdentityPolicy(t *testing.T) {
	_, readme, moto, sh := newBed(t)
	sh.run(t, `aws --region us-east-1 eks create-cluster --name prod --role-arn arn:aws:iam::123456789012:role/eks-cluster \
  --resources-vpc-config subnetIds=subnet-00000001 >/dev/null`)
	sh.run(t, block(t, readme, "sh", "# Setup on EKS: which cluster, and its service-account issuer")+
		block(t, readme, "sh", "# Setup: OIDC provider, permissions boundary, the operator's role")+
		block(t, readme, "sh", `aws iam put-role-policy --role-name "podidentity-operator-$CLUSTER" --policy-name podidentity-pod-identity \`))
	out, err := iamClient(t, moto.URL).GetRolePolicy(context.Background(), &iam.GetRolePolicyInput{
		RoleName: aws.String("podidentity-operator-prod"), PolicyName: aws.String("podidentity-pod-identity")})
	if err != nil {
		t.Fatalf("the README's command attached no podidentity-pod-identity policy: %v", err)
	}
	text, err := url.QueryUnescape(aws.ToString(out.PolicyDocument))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`arn:aws:eks:*:123456789012:cluster/prod`, `arn:aws:iam::123456789012:role/podidentity/*`, `"prod"`} {
		if !strings.Contains(text, want) {
			t.Errorf("the attached policy lacks %s: %s", want, text)
		}
	}
	if strings.Contains(text, "${") {
		t.Errorf("the attached policy has an unfilled placeholder: %s", text)
	}
}

// newBed is what each documented-setup test starts from: the checkout, its
// README, moto, and a terminal whose AWS CLI talks to moto.
func newBed(t *testing.T) (root, readme string, moto *testenv.Moto, sh shell) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if moto, err = testenv.StartMoto(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moto.Stop)
	sh = shell{root: root, path: tools(t), env: []string{"AWS_ENDPOINT_URL=" + moto.URL, "AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing", "AWS_PAGER=", "HOME=" + t.TempDir()}}
	return root, string(raw), moto, sh
}

// TestDocumentedAccountSetup runs the README's "Many AWS accounts" setup as
// written, after its IAM setup: the first block with credentials of the
// target account (moto's accounts: credentials from sts:AssumeRole act
// there), the second with the operator account's, and reads back what they
// made in each account.
func TestDocumentedAccountSetup(t *testing.T) {
	_, readme, moto, sh := newBed(t)
	const target = "222222222222"
	ctx := context.Background()
	stsc := sts.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")},
		func(o *sts.Options) { o.BaseEndpoint = aws.String(moto.URL) })
	out, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + target + ":role/admin"), RoleSessionName: aws.String("admin")})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	asTarget := fmt.Sprintf("export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_SESSION_TOKEN=%s\n",
		aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	asOperatorAccount := "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing; unset AWS_SESSION_TOKEN\n"
	sh.run(t, `aws --region us-east-1 eks create-cluster --name prod --role-arn arn:aws:iam::123456789012:role/eks-cluster \
  --resources-vpc-config subnetIds=subnet-00000001 >/dev/null`)
	sh.run(t, block(t, readme, "sh", "# Setup on EKS: which cluster, and its service-account issuer")+
		block(t, readme, "sh", "# Setup: OIDC provider, permissions boundary, the operator's role")+
		asTarget+block(t, readme, "sh", "# Many accounts: in each target account, with its credentials")+
		asOperatorAccount+block(t, readme, "sh", "# Many accounts: in the operator's own account"))

	home := iamClient(t, moto.URL)
	inTarget := iam.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider(
		aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))},
		func(o *iam.Options) { o.BaseEndpoint = aws.String(moto.URL) })
	decode := func(doc *string) string {
		s, err := url.QueryUnescape(aws.ToString(doc))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	role, err := inTarget.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("podidentity-operator-prod")})
	if err != nil {
		t.Fatalf("the account block made no role in the target account: %v", err)
	}
	if got := aws.ToString(role.Role.Arn); got != "arn:aws:iam::"+target+":role/podidentity-operator-prod" {
		t.Errorf("account role %s", got)
	}
	trust := decode(role.Role.AssumeRolePolicyDocument)
	for _, want := range []string{`"arn:aws:iam::123456789012:role/podidentity-operator-prod"`, `"sts:ExternalId":"prod-cluster"`} {
		if !strings.Contains(strings.ReplaceAll(trust, " ", ""), want) {
			t.Errorf("the account role's trust lacks %s: %s", want, trust)
		}
	}
	pol, err := inTarget.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("podidentity-operator-prod"), PolicyName: aws.String("podidentity-operator")})
	if err != nil {
		t.Fatal(err)
	}
	if text := decode(pol.PolicyDocument); !strings.Contains(text, "arn:aws:iam::"+target+":policy/podidentity-boundary-prod") ||
		!strings.Contains(text, "arn:aws:iam::"+target+":role/podidentity/*") || strings.Contains(text, "${") || strings.Contains(text, "123456789012") {
		t.Errorf("the account role's policy is not this account's: %s", text)
	}
	providers, err := inTarget.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
	if err != nil || len(providers.OpenIDConnectProviderList) != 1 ||
		!strings.HasPrefix(aws.ToString(providers.OpenIDConnectProviderList[0].Arn), "arn:aws:iam::"+target+":oidc-provider/") {
		t.Errorf("the cluster's issuer is not registered in the target account: %+v %v", providers, err)
	}
	if _, err := inTarget.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String("arn:aws:iam::" + target + ":policy/podidentity-boundary-prod")}); err != nil {
		t.Errorf("no boundary in the target account: %v", err)
	}

	assume, err := home.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("podidentity-operator-prod"), PolicyName: aws.String("assume-account-" + target)})
	if err != nil {
		t.Fatalf("the operator's role may not assume the account role: %v", err)
	}
	if text := strings.ReplaceAll(decode(assume.PolicyDocument), " ", ""); !strings.Contains(text, `"Resource":"arn:aws:iam::`+target+`:role/podidentity-operator-prod"`) ||
		!strings.Contains(text, `"Action":"sts:AssumeRole"`) {
		t.Errorf("the operator's assume policy: %s", text)
	}
}
