package podidentitywebhook

import (
	"context"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Issue 17 defect 11: the pod webhook answers only about the review's own
// namespace.
func TestPodWebhookAnswersOnlyForTheRequestNamespace(t *testing.T) {
	h := &Injector{Reader: fakeclient.NewClientBuilder().Build(), Decoder: admission.NewDecoder(clientgoscheme.Scheme)}
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"victim"},"spec":{"serviceAccountName":"app","containers":[{"name":"c","image":"i"}]}}`)
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Namespace: "attacker",
		Object: k8sruntime.RawExtension{Raw: raw}}}
	if res := h.Handle(context.Background(), req); res.Allowed || res.Result == nil || res.Result.Code != 400 {
		t.Errorf("a pod of another namespace was answered: %+v", res)
	}
}
