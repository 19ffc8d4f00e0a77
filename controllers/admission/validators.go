// Package admission serves the validating admission webhooks of
// PodIdentityBindings and PodIdentityGuardrails: the same checks the
// reconcilers make, answered before anything is stored.
package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/controllers/guardrail"
	"github.com/podidentity/podidentity-operator/internal/accounts"
	"github.com/podidentity/podidentity-operator/internal/catalog"
	"github.com/podidentity/podidentity-operator/internal/guard"
)

// +kubebuilder:webhook:path=/validate-iam-podidentity-io-v1alpha1-podidentitybinding,mutating=false,failurePolicy=fail,sideEffects=None,groups=iam.podidentity.io,resources=podidentitybindings,verbs=create;update,versions=v1alpha1,name=vpodidentitybinding.iam.podidentity.io,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-iam-podidentity-io-v1alpha1-podidentityguardrail,mutating=false,failurePolicy=fail,sideEffects=None,groups=iam.podidentity.io,resources=podidentityguardrails,verbs=create;update,versions=v1alpha1,name=vpodidentityguardrail.iam.podidentity.io,admissionReviewVersions=v1

// PolicyReader reads the default versions of managed policies.
type PolicyReader interface {
	Read(ctx context.Context, arns []string) (guard.Managed, error)
}

// BindingValidator is the admission webhook for PodIdentityBindings: it runs
// the same checks as the reconciler and denies with their messages.
type BindingValidator struct {
	Guard      guard.Checker
	Guardrails guardrail.Source
	// Policies, when set, reads the managed policies' documents so that
	// admission denies AdministratorAccess and the like early. When IAM
	// cannot be read in time, admission warns and the reconciler (which
	// fails closed) decides.
	Policies PolicyReader
	// Accounts, when set, says which AWS account holds a namespace's roles:
	// a binding there is checked with that account's configuration (role
	// name prefix, boundary) and its managed policies read there. When it
	// cannot say (two accounts select the namespace, or one cannot be
	// reached), the operator's own configuration checks the spec and the
	// reconciler reports the account.
	Accounts AccountSource
}

// AccountSource says which AWS account holds a namespace's roles
// (accounts.Registry).
type AccountSource interface {
	For(ctx context.Context, namespace string) (*accounts.Account, error)
}

// policyReadTimeout bounds the IAM reads of one admission request.
const policyReadTimeout = 3 * time.Second

var bindingGK = schema.GroupKind{Group: v1alpha1.GroupVersion.Group, Kind: "PodIdentityBinding"}

// ValidateCreate checks a new binding.
func (v *BindingValidator) ValidateCreate(ctx context.Context, b *v1alpha1.PodIdentityBinding) (admission.Warnings, error) {
	return v.validate(ctx, b)
}

// ValidateUpdate checks a changed binding. A binding being deleted is let
// through, so its finalizer can always be removed.
func (v *BindingValidator) ValidateUpdate(ctx context.Context, _, b *v1alpha1.PodIdentityBinding) (admission.Warnings, error) {
	if !b.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return v.validate(ctx, b)
}

// ValidateDelete allows every deletion.
func (v *BindingValidator) ValidateDelete(context.Context, *v1alpha1.PodIdentityBinding) (admission.Warnings, error) {
	return nil, nil
}

func (v *BindingValidator) validate(ctx context.Context, b *v1alpha1.PodIdentityBinding) (admission.Warnings, error) {
	// Bounded work before anything else: a review sent straight to the
	// webhook's port has not been through the CRD's schema.
	if msg := guard.SchemaLimit(b); msg != "" {
		return nil, apierrors.NewInvalid(bindingGK, b.Name, field.ErrorList{field.Forbidden(field.NewPath("spec"), msg)})
	}
	rules, err := v.Guardrails.RulesFor(ctx, b.Namespace)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("reading guardrails: %w", err))
	}
	checker, policies := v.Guard, v.Policies
	if v.Accounts != nil {
		if a, err := v.Accounts.For(ctx, b.Namespace); err == nil && a.Key != accounts.Home {
			checker = a.Guard
			if a.Policies != nil {
				policies = a.Policies
			}
		}
	}
	var managed guard.Managed
	var warnings admission.Warnings
	if policies != nil && len(b.Spec.ManagedPolicyArns) > 0 {
		rctx, cancel := context.WithTimeout(ctx, policyReadTimeout)
		managed, err = policies.Read(rctx, b.Spec.ManagedPolicyArns)
		cancel()
		if err != nil {
			warnings = append(warnings, "the managed policies could not be read from IAM to check them against the guardrails ("+err.Error()+"); the operator checks them before attaching and fails closed")
		}
	}
	res := checker.Check(b, rules, managed)
	res.Warnings = append(warnings, res.Warnings...)
	var errs field.ErrorList
	var doc any // the binding as JSON, decoded once for every finding's value
	if len(res.Invalid) > 0 {
		if raw, err := json.Marshal(b); err == nil {
			_ = json.Unmarshal(raw, &doc)
		}
	}
	for _, f := range res.Invalid {
		errs = append(errs, &field.Error{Type: field.ErrorTypeInvalid, Field: f.Field, BadValue: valueAt(doc, f.Field), Detail: f.Message})
	}
	for _, f := range res.Violations {
		errs = append(errs, field.Forbidden(field.NewPath(f.Field), f.Message+" (guardrail "+f.Rule+")"))
	}
	if len(errs) > 0 {
		return res.Warnings, apierrors.NewInvalid(bindingGK, b.Name, errs)
	}
	return res.Warnings, nil
}

// GuardrailValidator is the admission webhook for PodIdentityGuardrails:
// action patterns must name real actions and the selector must parse.
type GuardrailValidator struct {
	Catalog *catalog.Catalog
}

var guardrailGK = schema.GroupKind{Group: v1alpha1.GroupVersion.Group, Kind: "PodIdentityGuardrail"}

// ValidateCreate checks a new guardrail.
func (v *GuardrailValidator) ValidateCreate(_ context.Context, g *v1alpha1.PodIdentityGuardrail) (admission.Warnings, error) {
	return v.validate(g)
}

// ValidateUpdate checks a changed guardrail.
func (v *GuardrailValidator) ValidateUpdate(_ context.Context, _, g *v1alpha1.PodIdentityGuardrail) (admission.Warnings, error) {
	return v.validate(g)
}

// ValidateDelete allows every deletion.
func (v *GuardrailValidator) ValidateDelete(context.Context, *v1alpha1.PodIdentityGuardrail) (admission.Warnings, error) {
	return nil, nil
}

func (v *GuardrailValidator) validate(g *v1alpha1.PodIdentityGuardrail) (admission.Warnings, error) {
	var errs field.ErrorList
	if _, err := metav1.LabelSelectorAsSelector(&g.Spec.NamespaceSelector); err != nil {
		errs = append(errs, field.Invalid(field.NewPath("spec", "namespaceSelector"), "", err.Error()))
	}
	for _, list := range []struct {
		name     string
		patterns []string
	}{{"allowedActions", g.Spec.AllowedActions}, {"deniedActions", g.Spec.DeniedActions}} {
		for i, p := range list.patterns {
			if _, err := v.Catalog.Expand(p); err != nil {
				errs = append(errs, field.Invalid(field.NewPath("spec", list.name).Index(i), p, err.Error()))
			}
		}
	}
	for i, p := range g.Spec.AllowedResources {
		if p != "*" && !strings.HasPrefix(p, "arn:") {
			errs = append(errs, field.Invalid(field.NewPath("spec", "allowedResources").Index(i), p, `must be an ARN pattern or "*"`))
		}
	}
	var warnings admission.Warnings
	if len(g.Spec.NamespaceSelector.MatchLabels) == 0 && len(g.Spec.NamespaceSelector.MatchExpressions) == 0 {
		warnings = append(warnings, "spec.namespaceSelector is empty: this guardrail applies to every namespace")
	}
	if len(errs) > 0 {
		return warnings, apierrors.NewInvalid(guardrailGK, g.Name, errs)
	}
	return warnings, nil
}

// Setup registers both validating webhooks with the manager.
func Setup(mgr ctrl.Manager, b *BindingValidator, g *GuardrailValidator) error {
	if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.PodIdentityBinding{}).WithValidator(b).Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &v1alpha1.PodIdentityGuardrail{}).WithValidator(g).Complete()
}

// valueAt is the scalar at a field path such as spec.permissions[2].actions[0]
// in doc (an object decoded from JSON), for an admission message that shows
// the offending value; a path that names no scalar gives a value the message
// omits.
func valueAt(doc any, path string) any {
	cur := doc
	for _, part := range strings.Split(path, ".") {
		name, rest, _ := strings.Cut(part, "[")
		m, ok := cur.(map[string]any)
		if !ok {
			return field.OmitValueType{}
		}
		cur = m[name]
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			l, ok := cur.([]any)
			if err != nil || !ok || i < 0 || i >= len(l) {
				return field.OmitValueType{}
			}
			cur = l[i]
			rest = strings.TrimPrefix(after, "[")
		}
	}
	switch cur.(type) {
	case string, float64, bool:
		return cur
	}
	return field.OmitValueType{}
}
