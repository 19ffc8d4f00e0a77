// Command bundle generates the OLM bundle under bundle/ from config/, so the
// two never drift: `make bundle`. The bundle test regenerates it and fails
// when the committed files differ, then runs operator-framework's validators.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/operator-framework/api/pkg/lib/version"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	kustomizetypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"github.com/podidentity/podidentity-operator/cmd/operator"
	"github.com/podidentity/podidentity-operator/internal/manifests"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

const (
	packageName = "podidentity-operator"
	channel     = "alpha"
)

func main() {
	version := flag.String("version", "0.1.0", "Bundle version (semver).")
	root := flag.String("root", ".", "Repository root.")
	out := flag.String("out", "bundle", "Output directory.")
	image := flag.String("image", "", "Operator image to pin (default: the one in config/manager).")
	installer := flag.String("installer", "", "Also write a single-file installer (config/overlays/webhook-self-managed) to this path.")
	flag.Parse()
	files, err := Generate(*root, *version, *image)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := Write(*out, files); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *installer != "" {
		b, err := Installer(*root, *image)
		if err == nil {
			err = os.WriteFile(*installer, b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// clusterNameEnv sets --cluster-name; config/manager sets it to a placeholder.
var clusterNameEnv = operator.EnvName("cluster-name")

// Installer renders config/overlays/webhook-self-managed (the operator with
// its admission webhook and a self-managed certificate: no cert-manager
// needed) as one multi-document YAML, kubebuilder's build-installer
// convention, with the operator image pinned when image is set.
func Installer(root, image string) ([]byte, error) {
	objs, err := render(filepath.Join(root, "config", "overlays", "webhook-self-managed"))
	if err != nil {
		return nil, err
	}
	// `kubectl apply -f` creates objects in file order: the Namespace
	// and the CRDs first, or the namespaced objects before them fail on
	// the first apply.
	first := map[string]int{"Namespace": 0, "CustomResourceDefinition": 1}
	sort.SliceStable(objs, func(i, j int) bool {
		oi, iok := first[objs[i].GetKind()]
		oj, jok := first[objs[j].GetKind()]
		if !iok {
			oi = len(first)
		}
		if !jok {
			oj = len(first)
		}
		return oi < oj
	})
	var out bytes.Buffer
	for i, o := range objs {
		if o.GetKind() == "Deployment" {
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			c := containers[0].(map[string]any)
			if image != "" {
				c["image"] = image
			}
			// No placeholder cluster name: it is set with the environment
			// variable PODIDENTITY_CLUSTER_NAME (kubectl set env), which a
			// later apply of a newer installer then leaves alone; the
			// operator refuses to start, saying so, until it is set.
			var env []any
			for _, e := range c["env"].([]any) {
				if e.(map[string]any)["name"] != clusterNameEnv {
					env = append(env, e)
				}
			}
			c["env"] = env
			if err := unstructured.SetNestedSlice(o.Object, containers, "spec", "template", "spec", "containers"); err != nil {
				return nil, err
			}
		}
		if o.GetKind() == "ServiceAccount" {
			// Nor a placeholder role: the README annotates the
			// ServiceAccount with kubectl, which a later apply of a newer
			// installer leaves alone (and a placeholder would make that
			// annotate fail without --overwrite).
			a := o.GetAnnotations()
			delete(a, vocab.AnnotationRoleARN)
			o.SetAnnotations(a)
		}
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}

// Write replaces dir with the generated files.
func Write(dir string, files map[string][]byte) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Generate renders config/default and config/samples and returns the bundle's
// files by path relative to the bundle directory.
func Generate(root, version, image string) (map[string][]byte, error) {
	objs, err := render(filepath.Join(root, "config", "default"))
	if err != nil {
		return nil, err
	}
	samples, err := render(filepath.Join(root, "config", "samples"))
	if err != nil {
		return nil, err
	}
	icon, err := os.ReadFile(filepath.Join(root, "config", "manifests", "icon.svg"))
	if err != nil {
		return nil, err
	}
	description, err := os.ReadFile(filepath.Join(root, "config", "manifests", "description.md"))
	if err != nil {
		return nil, err
	}

	files := map[string][]byte{}
	var (
		deployment   *appsv1.Deployment
		clusterRoles = map[string]rbacv1.ClusterRole{}
		roles        = map[string]rbacv1.Role{}
		saName       string
		crdKinds     []operatorsv1alpha1.CRDDescription
	)
	for _, o := range objs {
		switch o.GetKind() {
		case "CustomResourceDefinition":
			b, err := yaml.Marshal(o.Object)
			if err != nil {
				return nil, err
			}
			files["manifests/"+o.GetName()+".yaml"] = b
		case "Deployment":
			deployment = &appsv1.Deployment{}
			if err := fromUnstructured(o, deployment); err != nil {
				return nil, err
			}
		case "ClusterRole":
			cr := rbacv1.ClusterRole{}
			if err := fromUnstructured(o, &cr); err != nil {
				return nil, err
			}
			clusterRoles[cr.Name] = cr
		case "Role":
			r := rbacv1.Role{}
			if err := fromUnstructured(o, &r); err != nil {
				return nil, err
			}
			roles[r.Name] = r
		case "ServiceAccount":
			saName = o.GetName()
		case "Service":
			// OLM creates Services shipped in the bundle; drop the namespace,
			// OLM installs into the OperatorGroup's namespace.
			u := o.DeepCopy()
			u.SetNamespace("")
			b, err := yaml.Marshal(u.Object)
			if err != nil {
				return nil, err
			}
			files["manifests/"+u.GetName()+"_v1_service.yaml"] = b
		}
	}
	if deployment == nil || saName == "" {
		return nil, errors.New("config/default has no Deployment or ServiceAccount")
	}
	// The bundle serves the admission webhook (failurePolicy Fail): it
	// carries the webhook components' PodDisruptionBudget, which OLM
	// creates in the install namespace.
	withWebhook, err := render(filepath.Join(root, "config", "overlays", "webhook-self-managed"))
	if err != nil {
		return nil, err
	}
	for _, o := range withWebhook {
		if o.GetKind() == "PodDisruptionBudget" {
			u := o.DeepCopy()
			u.SetNamespace("")
			b, err := yaml.Marshal(u.Object)
			if err != nil {
				return nil, err
			}
			files["manifests/"+u.GetName()+"_policy_v1_poddisruptionbudget.yaml"] = b
		}
	}

	// Roles bound to the operator's ServiceAccount become the CSV's permissions.
	var clusterPerms, perms []operatorsv1alpha1.StrategyDeploymentPermissions
	boundCluster, bound := map[string]bool{}, map[string]bool{}
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRoleBinding":
			b := rbacv1.ClusterRoleBinding{}
			if err := fromUnstructured(o, &b); err != nil {
				return nil, err
			}
			if bindsSA(b.Subjects, saName) {
				boundCluster[b.RoleRef.Name] = true
			}
		case "RoleBinding":
			b := rbacv1.RoleBinding{}
			if err := fromUnstructured(o, &b); err != nil {
				return nil, err
			}
			if bindsSA(b.Subjects, saName) {
				bound[b.RoleRef.Name] = true
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(boundCluster)) {
		clusterPerms = append(clusterPerms, operatorsv1alpha1.StrategyDeploymentPermissions{ServiceAccountName: saName, Rules: clusterRoles[name].Rules})
	}
	for _, name := range slices.Sorted(maps.Keys(bound)) {
		perms = append(perms, operatorsv1alpha1.StrategyDeploymentPermissions{ServiceAccountName: saName, Rules: roles[name].Rules})
	}
	// ClusterRoles nobody is bound to yet (metrics reader, editor, viewer) ship as
	// plain manifests for admins to bind.
	for _, name := range slices.Sorted(maps.Keys(clusterRoles)) {
		if boundCluster[name] {
			continue
		}
		cr := clusterRoles[name]
		b, err := yaml.Marshal(map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
			"metadata": map[string]any{"name": cr.Name, "labels": cr.Labels}, "rules": cr.Rules})
		if err != nil {
			return nil, err
		}
		files["manifests/"+name+"_rbac.authorization.k8s.io_v1_clusterrole.yaml"] = b
	}

	// OLM users set the cluster name through the Subscription's
	// spec.config.env (PODIDENTITY_CLUSTER_NAME): the CSV carries no
	// placeholder.
	spec := deployment.Spec.DeepCopy()
	for i := range spec.Template.Spec.Containers {
		c := &spec.Template.Spec.Containers[i]
		var env []corev1.EnvVar
		for _, e := range c.Env {
			if e.Name != clusterNameEnv {
				env = append(env, e)
			}
		}
		c.Env = env
	}
	if image != "" {
		spec.Template.Spec.Containers[0].Image = image
	}
	image = spec.Template.Spec.Containers[0].Image

	// OLM issues and mounts the webhook's certificate itself.
	spec.Template.Spec.Containers[0].Args = append(spec.Template.Spec.Containers[0].Args, "--enable-webhooks")
	webhooks, err := webhookDefinitions(root, deployment.Name)
	if err != nil {
		return nil, err
	}

	crdKinds = append(crdKinds, operatorsv1alpha1.CRDDescription{
		Name: "podidentityguardrails.iam.podidentity.io", Version: "v1alpha1", Kind: "PodIdentityGuardrail",
		DisplayName: "Pod Identity Guardrail",
		Description: "Cluster-wide policy that constrains what the bindings of selected namespaces may grant.",
		SpecDescriptors: []operatorsv1alpha1.SpecDescriptor{
			{Path: "namespaceSelector", DisplayName: "Namespace Selector", Description: "Namespaces whose bindings this guardrail constrains.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:selector:core:v1:Namespace"}},
			{Path: "allowedActions", DisplayName: "Allowed Actions", Description: "The only actions bindings may grant."},
			{Path: "deniedActions", DisplayName: "Denied Actions", Description: "Actions bindings may never grant."},
			{Path: "allowedResources", DisplayName: "Allowed Resources", Description: "The only resources bindings may name."},
			{Path: "allowedManagedPolicyArns", DisplayName: "Allowed Managed Policies", Description: "The only managed policies bindings may attach."},
			{Path: "requiredPermissionsBoundary", DisplayName: "Required Permissions Boundary", Description: "Boundary set on every selected role.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:text"}},
			{Path: "maxSessionDuration", DisplayName: "Max Session Duration", Description: "Cap on the roles' session duration.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:number"}},
		},
		StatusDescriptors: []operatorsv1alpha1.StatusDescriptor{
			{Path: "selectedBindings", DisplayName: "Selected Bindings", Description: "Bindings in the selected namespaces.", XDescriptors: []string{"urn:alm:descriptor:text"}},
			{Path: "violatingBindings", DisplayName: "Violating Bindings", Description: "Selected bindings that violate this guardrail.", XDescriptors: []string{"urn:alm:descriptor:text"}},
		},
	})
	crdKinds = append(crdKinds, operatorsv1alpha1.CRDDescription{
		Name: "podidentityaccounts.iam.podidentity.io", Version: "v1alpha1", Kind: "PodIdentityAccount",
		DisplayName: "Pod Identity Account",
		Description: "Maps namespaces to the AWS account that holds their bindings' roles, and the role the operator assumes there.",
		SpecDescriptors: []operatorsv1alpha1.SpecDescriptor{
			{Path: "accountId", DisplayName: "Account ID", Description: "The AWS account the roles are created in.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:text"}},
			{Path: "roleArn", DisplayName: "Role ARN", Description: "The role the operator assumes in that account.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:text"}},
			{Path: "namespaceSelector", DisplayName: "Namespace Selector", Description: "Namespaces whose roles live in this account.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:selector:core:v1:Namespace"}},
		},
		StatusDescriptors: []operatorsv1alpha1.StatusDescriptor{
			{Path: "namespaces", DisplayName: "Namespaces", Description: "Namespaces this account serves.", XDescriptors: []string{"urn:alm:descriptor:text"}},
			{Path: "conditions", DisplayName: "Conditions", Description: "Ready: the operator can act in the account.", XDescriptors: []string{"urn:alm:descriptor:io.kubernetes.conditions"}},
		},
	})
	crdKinds = append(crdKinds, operatorsv1alpha1.CRDDescription{
		Name: "podidentitybindings.iam.podidentity.io", Version: "v1alpha1", Kind: "PodIdentityBinding",
		DisplayName: "Pod Identity Binding",
		Description: "Gives the pods of one ServiceAccount an IAM role with exactly the declared permissions (IRSA).",
		Resources:   []operatorsv1alpha1.APIResourceReference{{Kind: "ServiceAccount", Name: "", Version: "v1"}},
		SpecDescriptors: []operatorsv1alpha1.SpecDescriptor{
			{Path: "serviceAccountName", DisplayName: "Service Account", Description: "ServiceAccount in this namespace that receives the role.", XDescriptors: []string{"urn:alm:descriptor:io.kubernetes:ServiceAccount"}},
			{Path: "permissions", DisplayName: "Permissions", Description: "Statements of the role's inline permission policy."},
			{Path: "managedPolicyArns", DisplayName: "Managed Policy ARNs", Description: "IAM managed policies attached to the role."},
			{Path: "roleName", DisplayName: "Role Name", Description: "Overrides the generated IAM role name.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:text"}},
			{Path: "maxSessionDuration", DisplayName: "Max Session Duration", Description: "Seconds, 3600 to 43200.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:number"}},
			{Path: "description", DisplayName: "Description", Description: "Description of the IAM role.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:text"}},
			{Path: "tags", DisplayName: "Tags", Description: "Extra tags on the IAM role."},
			{Path: "serviceAccountToken", DisplayName: "Token Settings", Description: "Audience, regional STS and token lifetime annotations."},
			{Path: "deletionPolicy", DisplayName: "Deletion Policy", Description: "Delete or Retain the IAM role when the binding is deleted.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:select:Delete", "urn:alm:descriptor:com.tectonic.ui:select:Retain"}},
		},
		StatusDescriptors: []operatorsv1alpha1.StatusDescriptor{
			{Path: "roleArn", DisplayName: "Role ARN", Description: "ARN of the IAM role.", XDescriptors: []string{"urn:alm:descriptor:text"}},
			{Path: "roleName", DisplayName: "Role Name", Description: "Name of the IAM role.", XDescriptors: []string{"urn:alm:descriptor:text"}},
			{Path: "serviceAccountName", DisplayName: "Annotated ServiceAccount", Description: "ServiceAccount carrying the role annotation.", XDescriptors: []string{"urn:alm:descriptor:text"}},
			{Path: "conditions", DisplayName: "Conditions", Description: "Ready, RoleSynced and ServiceAccountSynced.", XDescriptors: []string{"urn:alm:descriptor:io.kubernetes.conditions"}},
		},
	})

	var examples []map[string]any
	for _, s := range samples {
		m := s.DeepCopy().Object
		delete(m["metadata"].(map[string]any), "namespace")
		examples = append(examples, m)
	}
	almExamples, err := json.MarshalIndent(examples, "", "  ")
	if err != nil {
		return nil, err
	}

	csv := operatorsv1alpha1.ClusterServiceVersion{}
	csv.APIVersion = "operators.coreos.com/v1alpha1"
	csv.Kind = "ClusterServiceVersion"
	csv.Name = packageName + ".v" + version
	csv.Annotations = map[string]string{
		"alm-examples":                           string(almExamples),
		"capabilities":                           "Full Lifecycle",
		"categories":                             "Security",
		"containerImage":                         image,
		"description":                            "Declarative IAM Roles for Service Accounts: least-privilege AWS permissions for pods, kept in sync.",
		"repository":                             "https://github.com/podidentity/podidentity-operator",
		"support":                                "podidentity-operator maintainers",
		"operators.operatorframework.io/builder": "podidentity-operator-hack-bundle",
		"operators.operatorframework.io/project_layout": "go.kubebuilder.io/v4",
		"operatorframework.io/suggested-namespace":      "podidentity-system",
		// OpenShift's STS flow (a role ARN from the Subscription becomes
		// the ServiceAccount's annotation) is not implemented: the
		// README's annotate step is the way (decision 73).
		"features.operators.openshift.io/token-auth-aws": "false",
		// OLM may upgrade from any earlier version straight to this one.
		"olm.skipRange": ">=0.0.0 <" + version,
		"operatorframework.io/cluster-monitoring": "false",
	}
	csv.Spec = operatorsv1alpha1.ClusterServiceVersionSpec{
		DisplayName:    "Pod Identity Operator",
		Description:    string(description),
		Version:        mustVersion(version),
		Maturity:       channel,
		MinKubeVersion: "1.30.0",
		Keywords:       []string{"aws", "iam", "irsa", "eks", "security", "service account"},
		Maintainers:    []operatorsv1alpha1.Maintainer{{Name: "podidentity-operator maintainers", Email: "maintainers@podidentity.io"}},
		Provider:       operatorsv1alpha1.AppLink{Name: "podidentity-operator project"},
		Links:          []operatorsv1alpha1.AppLink{{Name: "Source", URL: "https://github.com/podidentity/podidentity-operator"}},
		Icon:           []operatorsv1alpha1.Icon{{Data: base64.StdEncoding.EncodeToString(icon), MediaType: "image/svg+xml"}},
		InstallModes: []operatorsv1alpha1.InstallMode{
			{Type: operatorsv1alpha1.InstallModeTypeOwnNamespace, Supported: false},
			{Type: operatorsv1alpha1.InstallModeTypeSingleNamespace, Supported: false},
			{Type: operatorsv1alpha1.InstallModeTypeMultiNamespace, Supported: false},
			{Type: operatorsv1alpha1.InstallModeTypeAllNamespaces, Supported: true},
		},
		CustomResourceDefinitions: operatorsv1alpha1.CustomResourceDefinitions{Owned: crdKinds},
		WebhookDefinitions:        webhooks,
		InstallStrategy: operatorsv1alpha1.NamedInstallStrategy{
			StrategyName: operatorsv1alpha1.InstallStrategyNameDeployment,
			StrategySpec: operatorsv1alpha1.StrategyDetailsDeployment{
				DeploymentSpecs:    []operatorsv1alpha1.StrategyDeploymentSpec{{Name: deployment.Name, Label: deployment.Labels, Spec: *spec}},
				ClusterPermissions: clusterPerms,
				Permissions:        perms,
			},
		},
	}
	csvYAML, err := yaml.Marshal(&csv)
	if err != nil {
		return nil, err
	}
	csvYAML = dropNulls(csvYAML)
	files["manifests/"+packageName+".clusterserviceversion.yaml"] = csvYAML

	annotations := map[string]string{
		"operators.operatorframework.io.bundle.mediatype.v1":       "registry+v1",
		"operators.operatorframework.io.bundle.manifests.v1":       "manifests/",
		"operators.operatorframework.io.bundle.metadata.v1":        "metadata/",
		"operators.operatorframework.io.bundle.package.v1":         packageName,
		"operators.operatorframework.io.bundle.channels.v1":        channel,
		"operators.operatorframework.io.bundle.channel.default.v1": channel,
	}
	ann, err := yaml.Marshal(map[string]any{"annotations": annotations})
	if err != nil {
		return nil, err
	}
	files["metadata/annotations.yaml"] = ann

	var df bytes.Buffer
	df.WriteString("# Generated by `make bundle`; do not edit.\nFROM scratch\n\n")
	for _, k := range slices.Sorted(maps.Keys(annotations)) {
		fmt.Fprintf(&df, "LABEL %s=%s\n", k, annotations[k])
	}
	df.WriteString("\nCOPY manifests /manifests/\nCOPY metadata /metadata/\n")
	files["bundle.Dockerfile"] = df.Bytes()
	return files, nil
}

// webhookDefinitions turns config/webhook/manifests.yaml into the CSV's
// webhook definitions, served by the operator's Deployment.
func webhookDefinitions(root, deploymentName string) ([]operatorsv1alpha1.WebhookDescription, error) {
	raw, err := os.ReadFile(filepath.Join(root, "config", "webhook", "manifests.yaml"))
	if err != nil {
		return nil, err
	}
	var out []operatorsv1alpha1.WebhookDescription
	for _, doc := range strings.Split(string(raw), "\n---") {
		if strings.TrimSpace(strings.Trim(doc, "-")) == "" {
			continue
		}
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := yaml.UnmarshalStrict([]byte(doc), vwc); err != nil {
			return nil, err
		}
		for _, w := range vwc.Webhooks {
			out = append(out, operatorsv1alpha1.WebhookDescription{
				GenerateName:            w.Name,
				Type:                    operatorsv1alpha1.ValidatingAdmissionWebhook,
				DeploymentName:          deploymentName,
				ContainerPort:           443,
				TargetPort:              &intstr.IntOrString{Type: intstr.Int, IntVal: 9443},
				Rules:                   w.Rules,
				FailurePolicy:           w.FailurePolicy,
				SideEffects:             w.SideEffects,
				AdmissionReviewVersions: w.AdmissionReviewVersions,
				WebhookPath:             w.ClientConfig.Service.Path,
			})
		}
	}
	return out, nil
}

// render builds a kustomization under config/ as `kubectl kustomize` does.
func render(dir string) ([]*unstructured.Unstructured, error) {
	return manifests.Build(dir, kustomizetypes.LoadRestrictionsRootOnly)
}

func fromUnstructured(u *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)
}

func bindsSA(subjects []rbacv1.Subject, sa string) bool {
	for _, s := range subjects {
		if s.Kind == "ServiceAccount" && s.Name == sa {
			return true
		}
	}
	return false
}

// dropNulls removes `creationTimestamp: null` and empty status blocks that
// typed marshalling adds.
func dropNulls(b []byte) []byte {
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(l)
		if t == "creationTimestamp: null" || t == "status: {}" || t == "resources: {}" || t == "strategy: {}" {
			continue
		}
		lines = append(lines, l)
	}
	return []byte(strings.Join(lines, "\n"))
}

func mustVersion(v string) version.OperatorVersion {
	return version.OperatorVersion{Version: semver.MustParse(v)}
}
