package guardrail

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/objmeta"
)

// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentityguardrails,verbs=get;list;watch
// +kubebuilder:rbac:groups=iam.podidentity.io,resources=podidentityguardrails/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Source finds the guardrails that apply to a namespace.
type Source struct {
	Reader client.Reader
	// APIReader reads a namespace the cache has not seen yet (a binding
	// created right after its namespace).
	APIReader client.Reader
}

// RulesFor returns the rules of every PodIdentityGuardrail selecting the namespace.
func (s Source) RulesFor(ctx context.Context, namespace string) ([]guard.Rule, error) {
	selected, err := s.selecting(ctx, namespace)
	if err != nil {
		return nil, err
	}
	rules := make([]guard.Rule, 0, len(selected))
	for _, g := range selected {
		rules = append(rules, guard.FromGuardrail(g))
	}
	return rules, nil
}

// selecting returns every PodIdentityGuardrail selecting the namespace
// (read-only, shared with the cache, when opts say
// client.UnsafeDisableDeepCopy).
func (s Source) selecting(ctx context.Context, namespace string, opts ...client.ListOption) ([]*v1alpha1.PodIdentityGuardrail, error) {
	list := &v1alpha1.PodIdentityGuardrailList{}
	if err := s.Reader.List(ctx, list, opts...); err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		// Nothing to select: no namespace to read (on every binding
		// event, with no guardrails at all).
		return nil, nil
	}
	nsLabels, err := objmeta.NamespaceLabels(ctx, s.Reader, s.APIReader, namespace)
	if err != nil {
		return nil, err
	}
	var out []*v1alpha1.PodIdentityGuardrail
	for i := range list.Items {
		if g := &list.Items[i]; selects(g, nsLabels) {
			out = append(out, g)
		}
	}
	return out, nil
}

// selects reports whether the guardrail's namespace selector matches the
// labels. Admission rejects bad selectors; one that got through selects
// every namespace, so the guardrail still applies (fail closed).
func selects(g *v1alpha1.PodIdentityGuardrail, nsLabels map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(&g.Spec.NamespaceSelector)
	if err != nil {
		sel = labels.Everything()
	}
	return sel.Matches(labels.Set(nsLabels))
}
