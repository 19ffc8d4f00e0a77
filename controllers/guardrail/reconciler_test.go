package guardrail

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/catalog"
	"github.com/podidentity/podidentity-operator/internal/guard"
)

// A count checks only bindings whose generation (or the guardrail's)
// changed since the last count, and remembers only bindings that exist.
func TestCountsRememberVerdictsPerGeneration(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	binding := func(name string, actions ...string) *v1alpha1.PodIdentityBinding {
		return &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: k8stypes.UID("uid-" + name), Generation: 1},
			Spec: v1alpha1.PodIdentityBindingSpec{ServiceAccountName: name,
				Permissions: []v1alpha1.PermissionStatement{{Effect: v1alpha1.EffectAllow, Actions: actions, Resources: []string{"arn:aws:s3:::bucket/*"}}}}}
	}
	g := &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: "g", UID: "guardrail", Generation: 1},
		Spec: v1alpha1.PodIdentityGuardrailSpec{NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}, DeniedActions: []string{"s3:Delete*"}}}
	c := fakeclient.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PodIdentityGuardrail{}).
		WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: map[string]string{"team": "a"}}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, g,
			binding("reader", "s3:GetObject"), binding("cleaner", "s3:DeleteObject")).Build()
	r := &Reconciler{Client: c, Guard: guard.Checker{Catalog: catalog.Default()}}
	count := func(want [2]int32) {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "g"}}); err != nil {
			t.Fatal(err)
		}
		got := &v1alpha1.PodIdentityGuardrail{}
		if err := c.Get(ctx, client.ObjectKey{Name: "g"}, got); err != nil {
			t.Fatal(err)
		}
		if s := got.Status; [2]int32{s.SelectedBindings, s.ViolatingBindings} != want {
			t.Fatalf("selected, violating = %d, %d; want %v (%v)", s.SelectedBindings, s.ViolatingBindings, want, s.Violations)
		}
	}
	edit := func(name string, generation int64, actions ...string) {
		t.Helper()
		b := &v1alpha1.PodIdentityBinding{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: name}, b); err != nil {
			t.Fatal(err)
		}
		b.Spec.Permissions[0].Actions, b.Generation = actions, generation
		if err := c.Update(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	count([2]int32{2, 1})

	// The same generation is not checked again (the API server gives
	// every spec change a new one; only this fake client lets a spec
	// change keep its generation, which shows the verdict was remembered).
	edit("reader", 1, "s3:DeleteBucket")
	count([2]int32{2, 1})
	edit("reader", 2, "s3:DeleteBucket")
	count([2]int32{2, 2})

	// A binding that is gone is forgotten.
	if err := c.Delete(ctx, binding("cleaner")); err != nil {
		t.Fatal(err)
	}
	count([2]int32{1, 1})
	if n := len(r.verdicts["g"].bindings); n != 1 {
		t.Errorf("%d verdicts remembered, want 1 (the bindings that exist)", n)
	}

	// A new guardrail generation judges every binding afresh.
	if err := c.Get(ctx, client.ObjectKey{Name: "g"}, g); err != nil {
		t.Fatal(err)
	}
	g.Spec.DeniedActions, g.Generation = []string{"dynamodb:*"}, 2
	if err := c.Update(ctx, g); err != nil {
		t.Fatal(err)
	}
	count([2]int32{1, 0})
}

// With no guardrails, choosing the ones that select a namespace reads no
// namespace (the binding watch asks on every binding event); with one,
// the namespace's labels decide.
func TestSelectingReadsNamespacesOnlyWithGuardrails(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	reads := 0
	c := fakeclient.NewClientBuilder().WithScheme(scheme).
		WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: map[string]string{"team": "a"}}}).
		WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			reads++
			return c.Get(ctx, key, obj, opts...)
		}}).Build()
	s := Source{Reader: c}
	if got, err := s.selecting(ctx, "ns"); err != nil || len(got) != 0 || reads != 0 {
		t.Fatalf("no guardrails: selected %d (err %v) after %d reads; want none after none", len(got), err, reads)
	}
	g := &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Name: "g"},
		Spec: v1alpha1.PodIdentityGuardrailSpec{NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}}
	if err := c.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	if got, err := s.selecting(ctx, "ns"); err != nil || len(got) != 1 || reads != 1 {
		t.Fatalf("one guardrail selecting team a: selected %d (err %v) after %d reads; want it after one", len(got), err, reads)
	}
}
