package charts_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/podidentity/podidentity-operator/cmd/operator"
	"github.com/podidentity/podidentity-operator/internal/testenv"
)

// TestPlatformValues renders the chart with the values platform teams set
// (issue 18, item 5) and reads each one back from the rendered objects.
func TestPlatformValues(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	objs := render(t, "--set", "clusterName=prod", "--set", "webhook.enabled=true",
		"--set", "image.digest="+digest,
		"--set", "imagePullSecrets[0]=local-pull", "--set", "global.imagePullSecrets[0].name=global-pull",
		"--set", "commonLabels.team=platform", "--set", "deploymentAnnotations.owner=platform",
		"--set", "revisionHistoryLimit=3", "--set", "strategy.rollingUpdate.maxUnavailable=0",
		"--set", "podSecurityContext.runAsUser=1000", "--set", "securityContext.readOnlyRootFilesystem=true",
		"--set", "extraVolumes[0].name=ca", "--set", "extraVolumes[0].configMap.name=corp-ca",
		"--set", "extraVolumeMounts[0].name=ca", "--set", "extraVolumeMounts[0].mountPath=/etc/ssl/corp",
		"--set", "webhook.timeoutSeconds=5",
		"--set", "extraObjects[0]=apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: '{{ .Release.Name }}-extra'\n  namespace: iam-system\n")
	var deploy, extra *unstructured.Unstructured
	for _, o := range objs {
		if o.GetLabels()["team"] != "platform" && o.GetKind() != "CustomResourceDefinition" && o.GetName() != "podidentity-extra" {
			t.Errorf("%s %s lacks commonLabels: %v", o.GetKind(), o.GetName(), o.GetLabels())
		}
		switch {
		case o.GetKind() == "Deployment":
			deploy = o
		case o.GetKind() == "ConfigMap" && o.GetName() == "podidentity-extra":
			extra = o
		case o.GetKind() == "ValidatingWebhookConfiguration":
			hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			for _, h := range hooks {
				if fmt.Sprint(h.(map[string]any)["timeoutSeconds"]) != "5" {
					t.Errorf("webhook %v: timeoutSeconds %v", h.(map[string]any)["name"], h.(map[string]any)["timeoutSeconds"])
				}
			}
		}
	}
	if extra == nil {
		t.Error("extraObjects: no ConfigMap podidentity-extra (tpl applied to the name)")
	}
	if deploy == nil {
		t.Fatal("no Deployment")
	}
	if deploy.GetAnnotations()["owner"] != "platform" {
		t.Errorf("deploymentAnnotations: %v", deploy.GetAnnotations())
	}
	if n, _, _ := unstructured.NestedFieldNoCopy(deploy.Object, "spec", "revisionHistoryLimit"); fmt.Sprint(n) != "3" {
		t.Errorf("revisionHistoryLimit %v", n)
	}
	if v, _, _ := unstructured.NestedFieldNoCopy(deploy.Object, "spec", "strategy", "rollingUpdate", "maxUnavailable"); fmt.Sprint(v) != "0" {
		t.Errorf("strategy: maxUnavailable %v", v)
	}
	pod, _, _ := unstructured.NestedMap(deploy.Object, "spec", "template", "spec")
	secrets, _ := pod["imagePullSecrets"].([]any)
	if len(secrets) != 2 || secrets[0].(map[string]any)["name"] != "local-pull" || secrets[1].(map[string]any)["name"] != "global-pull" {
		t.Errorf("imagePullSecrets %v: want local-pull and global.imagePullSecrets' global-pull", secrets)
	}
	if u, _, _ := unstructured.NestedFieldNoCopy(pod, "securityContext", "runAsUser"); fmt.Sprint(u) != "1000" {
		t.Errorf("podSecurityContext: %v", pod["securityContext"])
	}
	if nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot"); !nonRoot {
		t.Errorf("podSecurityContext lost the default runAsNonRoot: %v", pod["securityContext"])
	}
	c := container(deploy)
	if c["image"] != "ghcr.io/podidentity/podidentity-operator@"+digest {
		t.Errorf("image %v: want the digest", c["image"])
	}
	if ro, _, _ := unstructured.NestedBool(c, "securityContext", "readOnlyRootFilesystem"); !ro {
		t.Errorf("securityContext %v", c["securityContext"])
	}
	mounts, _ := c["volumeMounts"].([]any)
	volumes, _ := pod["volumes"].([]any)
	found := false
	for _, m := range mounts {
		found = found || m.(map[string]any)["mountPath"] == "/etc/ssl/corp"
	}
	foundVol := false
	for _, v := range volumes {
		foundVol = foundVol || v.(map[string]any)["name"] == "ca"
	}
	if !found || !foundVol || len(mounts) < 2 || len(volumes) < 2 {
		t.Errorf("extraVolumes/extraVolumeMounts not added beside the webhook's: %v %v", volumes, mounts)
	}

	// Refused: a tag-like digest, and a webhook timeout the API server refuses.
	for _, bad := range [][]string{{"--set", "image.digest=latest"}, {"--set", "webhook.timeoutSeconds=31"}} {
		if _, err := helm(t, append([]string{"template", "x", chartDir, "--set", "clusterName=prod"}, bad...)...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// find is the rendered object of that kind and name (nil if none).
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// field is the value at path, printed (with "<none>" if absent).
func field(o map[string]any, path ...string) string {
	v, ok, _ := unstructured.NestedFieldNoCopy(o, path...)
	if !ok {
		return "<none>"
	}
	return fmt.Sprint(v)
}

// TestSchedulingNetworkAndCredentialValues: the defaults a platform team
// expects (Linux nodes, replicas spread over nodes), the node network for
// the webhook, the pod identity webhook kept off kube-system and the
// operator's own namespace, the webhook certificate's issuer, and the two
// ways the operator gets credentials without EKS's webhook.
func TestSchedulingNetworkAndCredentialValues(t *testing.T) {
	objs := renderAs(t, "--set", "clusterName=prod")
	pod, _, _ := unstructured.NestedMap(find(objs, "Deployment", "podidentity-controller-manager").Object, "spec", "template", "spec")
	if got := field(pod, "nodeSelector"); got != "map[kubernetes.io/os:linux]" {
		t.Errorf("default nodeSelector %s", got)
	}
	spread, _, _ := unstructured.NestedSlice(pod, "topologySpreadConstraints")
	if len(spread) != 1 || field(spread[0].(map[string]any), "topologyKey") != "kubernetes.io/hostname" ||
		field(spread[0].(map[string]any), "whenUnsatisfiable") != "ScheduleAnyway" ||
		field(spread[0].(map[string]any), "labelSelector", "matchLabels", "app.kubernetes.io/instance") != "podidentity" {
		t.Errorf("default topologySpreadConstraints %v: want the replicas spread over nodes", spread)
	}
	if field(pod, "hostNetwork") != "<none>" {
		t.Errorf("hostNetwork by default: %s", field(pod, "hostNetwork"))
	}

	objs = renderAs(t, "--set", "clusterName=prod", "--set-json", "topologySpreadConstraints=[]",
		"--set", "webhook.enabled=true", "--set", "podIdentityWebhook.enabled=true", "--set", "webhook.hostNetwork=true",
		"--set", "webhook.port=10250", "--set", "metrics.port=10251", "--set", "healthProbe.port=10252", "--set", "networkPolicy.enabled=true",
		"--set", "webhook.certificates=certManager", "--set", "webhook.certManager.issuerRef.kind=ClusterIssuer",
		"--set", "webhook.certManager.issuerRef.name=corp-ca",
		"--set", "operatorCredentials.webIdentityRoleArn=arn:aws:iam::111122223333:role/podidentity-operator-prod")
	deploy := find(objs, "Deployment", "podidentity-controller-manager")
	pod, _, _ = unstructured.NestedMap(deploy.Object, "spec", "template", "spec")
	if field(pod, "topologySpreadConstraints") != "<none>" {
		t.Errorf("topologySpreadConstraints=[] still spreads: %s", field(pod, "topologySpreadConstraints"))
	}
	if field(pod, "hostNetwork") != "true" || field(pod, "dnsPolicy") != "ClusterFirstWithHostNet" {
		t.Errorf("webhook.hostNetwork: hostNetwork %s dnsPolicy %s", field(pod, "hostNetwork"), field(pod, "dnsPolicy"))
	}
	c := container(deploy)
	ports := map[string]string{}
	for _, p := range c["ports"].([]any) {
		ports[p.(map[string]any)["name"].(string)] = fmt.Sprint(p.(map[string]any)["containerPort"])
	}
	if ports["webhook"] != "10250" || ports["metrics"] != "10251" || ports["probes"] != "10252" {
		t.Errorf("container ports %v", ports)
	}
	opts, err := operator.OptionsFromDeployment(deploy)
	if err != nil {
		t.Fatal(err)
	}
	if opts.WebhookPort != 10250 || opts.MetricsBindAddress != ":10251" || opts.HealthProbeBindAddress != ":10252" {
		t.Errorf("the operator listens on webhook %d, metrics %s, probes %s", opts.WebhookPort, opts.MetricsBindAddress, opts.HealthProbeBindAddress)
	}
	var policyPorts []string
	rules, _, _ := unstructured.NestedSlice(find(objs, "NetworkPolicy", "podidentity-controller-manager").Object, "spec", "ingress")
	for _, r := range rules {
		for _, p := range r.(map[string]any)["ports"].([]any) {
			policyPorts = append(policyPorts, fmt.Sprint(p.(map[string]any)["port"]))
		}
	}
	if fmt.Sprint(policyPorts) != "[10250 10251 10252]" {
		t.Errorf("the NetworkPolicy admits ports %v", policyPorts)
	}
	if cert := find(objs, "Certificate", "podidentity-serving-cert"); cert == nil ||
		field(cert.Object, "spec", "issuerRef") != "map[kind:ClusterIssuer name:corp-ca]" {
		t.Errorf("webhook.certManager.issuerRef: %v", cert)
	}
	if find(objs, "Issuer", "podidentity-selfsigned-issuer") != nil {
		t.Error("a self-signed Issuer beside webhook.certManager.issuerRef")
	}
	mwc := find(objs, "MutatingWebhookConfiguration", "podidentity-mutating-webhook-configuration")
	hooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	exprs, _, _ := unstructured.NestedSlice(hooks[0].(map[string]any), "namespaceSelector", "matchExpressions")
	if fmt.Sprint(exprs) != "[map[key:podidentity.io/pod-identity-webhook operator:NotIn values:[disabled]] "+
		"map[key:kubernetes.io/metadata.name operator:NotIn values:[kube-system podidentity-system]]]" {
		t.Errorf("the pod identity webhook's namespaceSelector %v: want kube-system and the release namespace left out", exprs)
	}
	// The operator's own web identity: its projected token, the SDK's variables.
	env := map[string]string{}
	for _, e := range c["env"].([]any) {
		env[e.(map[string]any)["name"].(string)] = fmt.Sprint(e.(map[string]any)["value"])
	}
	if env["AWS_ROLE_ARN"] != "arn:aws:iam::111122223333:role/podidentity-operator-prod" ||
		env["AWS_WEB_IDENTITY_TOKEN_FILE"] != "/var/run/secrets/eks.amazonaws.com/serviceaccount/token" {
		t.Errorf("operatorCredentials.webIdentityRoleArn: env %v", env)
	}
	var projected map[string]any
	for _, v := range pod["volumes"].([]any) {
		if v.(map[string]any)["name"] == "aws-iam-token" {
			projected = v.(map[string]any)
		}
	}
	if field(projected, "projected", "sources") != "[map[serviceAccountToken:map[audience:sts.amazonaws.com expirationSeconds:86400 path:token]]]" {
		t.Errorf("the token volume %v", projected)
	}
	mounted := false
	for _, m := range c["volumeMounts"].([]any) {
		mounted = mounted || m.(map[string]any)["name"] == "aws-iam-token" && m.(map[string]any)["mountPath"] == "/var/run/secrets/eks.amazonaws.com/serviceaccount"
	}
	if !mounted {
		t.Errorf("the token is not mounted where AWS_WEB_IDENTITY_TOKEN_FILE points: %v", c["volumeMounts"])
	}

	objs = renderAs(t, "--set", "clusterName=prod", "--set", "operatorCredentials.secretName=podidentity-aws")
	if got := field(container(find(objs, "Deployment", "podidentity-controller-manager")), "envFrom"); got != "[map[secretRef:map[name:podidentity-aws]]]" {
		t.Errorf("operatorCredentials.secretName: envFrom %s", got)
	}

	objs = renderAs(t, "--set", "clusterName=prod", "--set", "podIdentity.eksClusterName=prod-eks", "--set", "podIdentity.defaultIdentity=EKSPodIdentity")
	opts, err = operator.OptionsFromDeployment(find(objs, "Deployment", "podidentity-controller-manager"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.EKSClusterName != "prod-eks" || opts.DefaultIdentity != "EKSPodIdentity" {
		t.Errorf("podIdentity values: the operator runs with --eks-cluster-name %q --default-identity %q", opts.EKSClusterName, opts.DefaultIdentity)
	}

	for _, bad := range [][]string{
		{"--set", "podIdentity.defaultIdentity=EKSPodIdentity"},
		{"--set", "operatorCredentials.secretName=s", "--set", "operatorCredentials.webIdentityRoleArn=arn:aws:iam::111122223333:role/x"},
		{"--set", "operatorCredentials.webIdentityRoleArn=podidentity-operator"},
		{"--set", "metrics.port=9443"},
		{"--set", "metrics.serviceMonitor.namespace=monitoring", "--set", "metrics.certManager.enabled=true"},
		{"--set", "metrics.serviceMonitor.interval=30 seconds"},
	} {
		if _, err := helm(t, append([]string{"template", "x", chartDir, "--set", "clusterName=prod"}, bad...)...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestMonitoringValues: the ServiceMonitor's scrape settings and namespace
// (with the scraper's identity beside it), and the Grafana dashboard
// ConfigMap for Grafana's sidecar.
func TestMonitoringValues(t *testing.T) {
	objs := renderAs(t, "--set", "clusterName=prod", "--set", "metrics.serviceMonitor.enabled=true", monitoringAPIs,
		"--set", "metrics.serviceMonitor.namespace=monitoring", "--set", "metrics.serviceMonitor.interval=30s",
		"--set", "metrics.serviceMonitor.scrapeTimeout=10s",
		"--set", "metrics.serviceMonitor.relabelings[0].targetLabel=cluster", "--set", "metrics.serviceMonitor.relabelings[0].replacement=prod",
		"--set", "metrics.serviceMonitor.metricRelabelings[0].action=drop", "--set", "metrics.serviceMonitor.metricRelabelings[0].regex=go_.*",
		"--set", "grafana.dashboard.enabled=true", "--set", "grafana.dashboard.namespace=grafana",
		"--set", "grafana.dashboard.annotations.grafana_folder=Platform")
	sm := find(objs, "ServiceMonitor", "podidentity-controller-manager-metrics-monitor")
	if sm == nil || sm.GetNamespace() != "monitoring" {
		t.Fatalf("ServiceMonitor %v: want it in monitoring", sm)
	}
	ep, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	e := ep[0].(map[string]any)
	if field(e, "interval") != "30s" || field(e, "scrapeTimeout") != "10s" ||
		field(e, "relabelings") != "[map[replacement:prod targetLabel:cluster]]" ||
		field(e, "metricRelabelings") != "[map[action:drop regex:go_.*]]" {
		t.Errorf("endpoint %v", e)
	}
	if got := field(sm.Object, "spec", "namespaceSelector"); got != "map[matchNames:[podidentity-system]]" {
		t.Errorf("the ServiceMonitor in another namespace selects %s: want the release namespace", got)
	}
	// Prometheus reads the token Secret in the ServiceMonitor's namespace;
	// it is the scraper ServiceAccount's, bound to the metrics reader role.
	secret := find(objs, "Secret", field(e, "authorization", "credentials", "name"))
	sa := find(objs, "ServiceAccount", "podidentity-metrics-scraper")
	if secret == nil || secret.GetNamespace() != "monitoring" || sa == nil || sa.GetNamespace() != "monitoring" ||
		secret.GetAnnotations()["kubernetes.io/service-account.name"] != sa.GetName() {
		t.Errorf("scraper token Secret %v, ServiceAccount %v: want both in monitoring", secret, sa)
	}
	crb := find(objs, "ClusterRoleBinding", "podidentity-metrics-scraper-rolebinding")
	if got := field(crb.Object, "subjects"); got != "[map[kind:ServiceAccount name:podidentity-metrics-scraper namespace:monitoring]]" {
		t.Errorf("the reader role is bound to %s", got)
	}

	cm := find(objs, "ConfigMap", "podidentity-grafana-dashboard")
	if cm == nil || cm.GetNamespace() != "grafana" || cm.GetLabels()["grafana_dashboard"] != "1" ||
		cm.GetAnnotations()["grafana_folder"] != "Platform" {
		t.Fatalf("dashboard ConfigMap %v", cm)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "config", "components", "grafana-dashboard", "podidentity-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := field(cm.Object, "data", "podidentity-operator.json"); got != string(want) {
		t.Error("the ConfigMap's dashboard differs from config/components/grafana-dashboard/podidentity-operator.json")
	}
}

// renderAs renders with the object names config/ uses (podidentity-...).
func renderAs(t *testing.T, flags ...string) []*unstructured.Unstructured {
	t.Helper()
	return render(t, append([]string{"--set", "fullnameOverride=podidentity"}, flags...)...)
}

// TestOperatorWebIdentityPatchMatchesChart builds the README's kustomize
// patch for the operator's own role ("Running on any cluster", step 4) with
// the pod identity webhook's components, and checks that it gives the
// Deployment exactly what the chart's operatorCredentials.webIdentityRoleArn
// does: the same Deployment, variables, token volume and mount.
func TestOperatorWebIdentityPatchMatchesChart(t *testing.T) {
	readme := readmeText(t)
	const role = "arn:aws:iam::111122223333:role/podidentity-operator-prod"
	patch := testenv.FencedBlock(readme, "yaml", "# kustomization.yaml: the operator's own role, with its own projected token")
	if patch == "" || !strings.Contains(patch, role) {
		t.Fatalf("README: no kustomize patch for the operator's role naming %s", role)
	}
	want := patchedLikeChart(t, "resources:\n- ../default\ncomponents:\n- ../components/webhook-self-managed\n- ../components/pod-identity-webhook\n"+patch,
		"--set", "webhook.enabled=true", "--set", "podIdentityWebhook.enabled=true", "--set", "operatorCredentials.webIdentityRoleArn="+role)
	if otherEnv(want)["AWS_ROLE_ARN"] != role {
		t.Errorf("the patched Deployment's variables %v", otherEnv(want))
	}
}

// TestOperatorSecretPatchMatchesChart builds the README's kustomize patch
// for the operator's credentials from a Secret ("Running on any cluster",
// step 4) and checks that it gives the Deployment exactly what the chart's
// operatorCredentials.secretName does, for the Secret the README's command
// creates.
func TestOperatorSecretPatchMatchesChart(t *testing.T) {
	readme := readmeText(t)
	const secret = "podidentity-aws"
	for _, said := range []string{
		"kubectl -n podidentity-system create secret generic " + secret + " --from-literal=AWS_ACCESS_KEY_ID=",
		"--from-literal=AWS_SECRET_ACCESS_KEY=",
		"--set operatorCredentials.secretName=" + secret,
	} {
		if !strings.Contains(readme, said) {
			t.Errorf("README: no %q", said)
		}
	}
	patch := testenv.FencedBlock(readme, "yaml", "# kustomization.yaml: the operator's own credentials from a Secret")
	if patch == "" || !strings.Contains(patch, secret) {
		t.Fatalf("README: no kustomize patch for the operator's credentials naming the Secret %s", secret)
	}
	want := patchedLikeChart(t, "resources:\n- ../default\n"+patch, "--set", "operatorCredentials.secretName="+secret)
	if envFrom := field(container(want), "envFrom"); envFrom != "[map[secretRef:map[name:"+secret+"]]]" {
		t.Errorf("the patched Deployment's envFrom %s", envFrom)
	}
}

// readmeText is the README.
func readmeText(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// patchedLikeChart builds a kustomization under config/ (a doc's patch
// added) and checks that its Deployment is the chart's with these values
// (and clusterName=prod), which it returns.
func patchedLikeChart(t *testing.T, kustomization string, values ...string) *unstructured.Unstructured {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := testenv.KustomizeUnder(filepath.Join(root, "config"), kustomization)
	if err != nil {
		t.Fatal(err)
	}
	var want *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			want = o
		}
	}
	if want == nil {
		t.Fatal("the kustomization has no Deployment")
	}
	got := find(renderAs(t, append([]string{"--set", "clusterName=prod"}, values...)...), "Deployment", "podidentity-controller-manager")
	w, g := compareOperatorConfig(t, want, got)
	for _, d := range diff(w.Object, g.Object, "") {
		t.Errorf("Deployment: %s", d)
	}
	return want
}
