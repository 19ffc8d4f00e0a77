// Package podidentitywebhook is the built-in pod identity webhook for
// clusters without EKS's: it gives pods of an annotated ServiceAccount the
// projected token and environment the AWS SDK needs for IRSA.
package podidentitywebhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podidentity/podidentity-operator/internal/bindingindex"
	"github.com/podidentity/podidentity-operator/internal/objmeta"
	"github.com/podidentity/podidentity-operator/internal/podwebhook"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// Path is where the pod identity webhook is served.
const Path = "/mutate-v1-pod"

// Injector is the built-in pod identity webhook: it gives pods
// whose ServiceAccount carries a role annotation the projected token and
// environment the AWS SDK needs (podwebhook.Mutate), as AWS's webhook does on
// EKS. It is registered with failurePolicy Ignore: pods it misses are reported
// by the binding's PodsCurrent condition.
type Injector struct {
	// Reader reads ServiceAccounts and Namespaces from the manager's cache;
	// APIReader reads a ServiceAccount the cache has not seen yet.
	Reader    client.Reader
	APIReader client.Reader
	Decoder   admission.Decoder
	Config    podwebhook.Config
	// ExcludedNamespaces never get a mutation.
	ExcludedNamespaces []string
}

// Handle mutates a Pod at creation.
func (h *Injector) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("only pod creation is mutated")
	}
	if slices.Contains(h.ExcludedNamespaces, req.Namespace) {
		return admission.Allowed("namespace excluded by --pod-identity-webhook-excluded-namespaces")
	}
	ns := objmeta.NamespaceMeta()
	if err := h.Reader.Get(ctx, client.ObjectKey{Name: req.Namespace}, ns); err == nil && ns.Labels[vocab.LabelPodWebhook] == "disabled" {
		return admission.Allowed("namespace labelled " + vocab.LabelPodWebhook + "=disabled")
	}
	pod := &corev1.Pod{}
	if err := h.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	// Answer only about the namespace the review is for: a pod of another
	// namespace in a review (never sent by the API server) learns nothing.
	if pod.Namespace != "" && pod.Namespace != req.Namespace {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("the pod's namespace %q is not the request's %q", pod.Namespace, req.Namespace))
	}
	name := pod.Spec.ServiceAccountName
	if name == "" {
		name = "default"
	}
	sa, err := h.serviceAccount(ctx, req.Namespace, name)
	if err != nil {
		// failurePolicy is Ignore anyway; answer so the pod is created now.
		logf.FromContext(ctx).Error(err, "reading the pod's ServiceAccount; the pod is created without credentials", "namespace", req.Namespace, "serviceAccount", name)
		return admission.Allowed("could not read ServiceAccount " + name)
	}
	mutated := pod.DeepCopy()
	if res := podwebhook.Mutate(mutated, sa, h.Config); !res.Mutated {
		return admission.Allowed(res.Reason)
	}
	raw, err := json.Marshal(mutated)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, raw)
}

// serviceAccount reads from the cache. When the cached copy has no role
// annotation but a binding names the ServiceAccount, the cache may lag the
// annotation the operator just wrote (a pod created right after the binding
// became Ready), so it reads live; pods of other ServiceAccounts cost no API
// call. nil when there is none.
func (h *Injector) serviceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	sa := objmeta.ServiceAccountMeta()
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := h.Reader.Get(ctx, key, sa)
	if (apierrors.IsNotFound(err) || err == nil && sa.Annotations[podwebhook.AnnotationRoleARN] == "") && h.bound(ctx, namespace, name) {
		err = h.APIReader.Get(ctx, key, sa)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &corev1.ServiceAccount{ObjectMeta: sa.ObjectMeta}, nil
}

// bound reports whether a binding in the namespace names the ServiceAccount.
func (h *Injector) bound(ctx context.Context, namespace, name string) bool {
	if h.APIReader == nil {
		return false
	}
	list, err := bindingindex.Claiming(ctx, h.Reader, namespace, name)
	return err == nil && len(list) > 0
}

// Setup serves the pod identity webhook at Path.
func Setup(mgr ctrl.Manager, h *Injector) {
	if h.Decoder == nil {
		h.Decoder = admission.NewDecoder(mgr.GetScheme())
	}
	mgr.GetWebhookServer().Register(Path, &webhook.Admission{Handler: h})
}
