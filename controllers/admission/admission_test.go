package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/controllers/guardrail"
	"github.com/podidentity/podidentity-operator/internal/accounts"
	"github.com/podidentity/podidentity-operator/internal/catalog"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/role"
)

func TestValueAt(t *testing.T) {
	b := &v1alpha1.PodIdentityBinding{Spec: v1alpha1.PodIdentityBindingSpec{ServiceAccountName: "app",
		Permissions: []v1alpha1.PermissionStatement{{Actions: []string{"s3:GetObject"}}, {Actions: []string{"a", "dynamodb:GetItemz"}}}}}
	cases := map[string]any{
		"spec.permissions[1].actions[1]": "dynamodb:GetItemz",
		"spec.serviceAccountName":        "app",
		"spec.permissions[1]":            field.OmitValueType{},
		"spec.permissions[5].actions[0]": field.OmitValueType{},
		"spec":                           field.OmitValueType{},
	}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for path, want := range cases {
		if got := valueAt(doc, path); got != want {
			t.Errorf("valueAt(%s) = %#v, want %#v", path, got, want)
		}
	}
}

type countingPolicies struct{ reads int }

func (c *countingPolicies) Read(_ context.Context, arns []string) (guard.Managed, error) {
	c.reads += len(arns)
	return guard.Managed{}, nil
}

// Issue 17 defect 11: a review sent straight to the webhook's port, past the
// CRD's schema, is refused before any IAM read or guard check.
func TestAdmissionRechecksTheSchemaFirst(t *testing.T) {
	policies := &countingPolicies{}
	v := &BindingValidator{Policies: policies}
	b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"},
		Spec: v1alpha1.PodIdentityBindingSpec{ServiceAccountName: "app"}}
	for i := range 5000 {
		b.Spec.ManagedPolicyArns = append(b.Spec.ManagedPolicyArns, fmt.Sprintf("arn:aws:iam::123456789012:policy/p%d", i))
	}
	if _, err := v.validate(context.Background(), b); err == nil || !strings.Contains(err.Error(), "over the limit of 20") {
		t.Fatalf("err = %v", err)
	}
	if policies.reads != 0 {
		t.Errorf("%d managed policies read for a review over the schema's limits", policies.reads)
	}
}

type oneAccount struct{ a *accounts.Account }

func (o oneAccount) For(context.Context, string) (*accounts.Account, error) { return o.a, nil }

// A binding in a namespace another account serves is checked with that
// account's configuration: its generated names carry the account's prefix.
func TestAdmissionChecksWithTheNamespacesAccount(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	c := fakeclient.NewClientBuilder().WithScheme(scheme).WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}).Build()
	home := guard.Checker{Catalog: catalog.Default(), Builtins: true,
		RoleConfig: role.Config{ClusterName: "dev", ProviderARN: "arn:aws:iam::111111111111:oidc-provider/oidc.example.com", Issuer: "oidc.example.com"}}
	other := home
	other.RoleConfig, _ = accounts.Config(home.RoleConfig, v1alpha1.PodIdentityAccountSpec{AccountID: "222222222222", RoleNamePrefix: "teams-"})
	b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"},
		Spec: v1alpha1.PodIdentityBindingSpec{ServiceAccountName: "app", RoleName: "teams-dev_ns_app",
			Permissions: []v1alpha1.PermissionStatement{{Effect: v1alpha1.EffectAllow, Actions: []string{"s3:GetObject"}, Resources: []string{"*"}}}}}
	v := &BindingValidator{Guard: home, Guardrails: guardrail.Source{Reader: c}}
	if _, err := v.validate(context.Background(), b); err == nil || !strings.Contains(err.Error(), "roleName") {
		t.Fatalf("the operator account's names: err = %v", err)
	}
	v.Accounts = oneAccount{&accounts.Account{Key: "222222222222", Guard: other}}
	if _, err := v.validate(context.Background(), b); err != nil {
		t.Errorf("the account's generated names: %v", err)
	}
	v.Accounts = oneAccount{&accounts.Account{Key: accounts.Home, Guard: other}}
	if _, err := v.validate(context.Background(), b); err == nil {
		t.Errorf("the operator's own account is checked with the operator's configuration")
	}
}
