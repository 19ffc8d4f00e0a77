package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/guard"
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
