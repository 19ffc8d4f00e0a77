// Package bindingindex is the index of cached bindings by the
// ServiceAccounts they name (spec) or hold (status), and the queries every
// controller and webhook asks of it: which bindings claim a ServiceAccount,
// and the reconcile requests of a selection of bindings.
package bindingindex

import (
	"context"
	"slices"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// Index of bindings by spec.serviceAccountName and status.serviceAccountName.
const (
	// ServiceAccounts indexes a binding under the ServiceAccount it
	// names and the one it holds (one entry when they are the same): one
	// index rather than two halves its memory, which at 10,000 bindings is
	// about 10 MB. Callers that want only one of the two filter.
	ServiceAccounts = "serviceAccounts"
)

// Requests lists bindings from the cache as reconcile requests,
// those for which keep is true when it is set. The items are read only (no
// copy of each: a guardrail change lists every binding).
func Requests(ctx context.Context, c client.Reader, keep func(*v1alpha1.PodIdentityBinding) bool, opts ...client.ListOption) []reconcile.Request {
	list := &v1alpha1.PodIdentityBindingList{}
	if err := c.List(ctx, list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		logf.FromContext(ctx).Error(err, "listing bindings")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		if keep == nil || keep(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// Register indexes cached bindings by "namespace/name" of the
// ServiceAccounts they name or hold, under the name controller-runtime's
// cache reader looks up for client.MatchingFields{ServiceAccounts: sa}
// with client.InNamespace (NamingOrHolding). It is IndexField without its
// second, cluster-wide key per value, which no query here uses: IndexField
// keeps two one-element sets per binding, about 5 MB at 10,000 bindings
// (decision 55). A list by this index outside a namespace finds nothing.
func Register(ctx context.Context, c cache.Cache) error {
	inf, err := c.GetInformer(ctx, &v1alpha1.PodIdentityBinding{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	return inf.AddIndexers(toolscache.Indexers{"field:" + ServiceAccounts: func(o any) ([]string, error) {
		b, ok := o.(*v1alpha1.PodIdentityBinding)
		if !ok {
			return nil, nil
		}
		var keys []string
		for _, sa := range ServiceAccountsOf(b) {
			keys = append(keys, b.Namespace+"/"+sa)
		}
		return keys, nil
	}})
}

// ServiceAccountsOf are the ServiceAccounts a binding names (spec) and
// holds (status), each once: its keys in the ServiceAccounts index.
func ServiceAccountsOf(b *v1alpha1.PodIdentityBinding) []string {
	keys := []string{b.Spec.ServiceAccountName}
	if sa := b.Status.ServiceAccountName; sa != "" && sa != b.Spec.ServiceAccountName {
		keys = append(keys, sa)
	}
	return keys
}

// NamingOrHolding selects the bindings in namespace that name the
// ServiceAccount or hold it (ServiceAccounts).
func NamingOrHolding(namespace, sa string) []client.ListOption {
	return []client.ListOption{client.InNamespace(namespace), client.MatchingFields{ServiceAccounts: sa}}
}

// Claiming lists the bindings in namespace that claim
// the ServiceAccount: their spec names it, or their roles trust it now
// (status.serviceAccountName; a binding whose spec became invalid keeps
// serving the ServiceAccount it held). The items are for reading only: they
// share their maps, slices and pointers with the cache (every reconcile and
// every sweep asks).
func Claiming(ctx context.Context, c client.Reader, namespace, sa string) ([]v1alpha1.PodIdentityBinding, error) {
	list := &v1alpha1.PodIdentityBindingList{}
	if err := c.List(ctx, list, append(NamingOrHolding(namespace, sa), client.UnsafeDisableDeepCopy)...); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list.Items, func(b v1alpha1.PodIdentityBinding) bool {
		return b.Spec.ServiceAccountName != sa && b.Status.ServiceAccountName != sa
	}), nil
}
