package charts_test

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
