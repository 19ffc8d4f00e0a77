package binding

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/naming"
	"github.com/podidentity/podidentity-operator/internal/objmeta"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// The trimmed ServiceAccount still answers every question the operator asks
// of its managed fields, and keeps nothing else of other managers.
func TestTrimMetadata(t *testing.T) {
	b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Name: "app", UID: "binding-uid"}}
	ours := &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:` + vocab.AnnotationRoleARN + `":{}}}}`)}
	newSA := func(name string) *metav1.PartialObjectMetadata {
		sa := objmeta.ServiceAccountMeta()
		sa.Name, sa.Namespace, sa.UID, sa.ResourceVersion = name, "team-a", types.UID(name+"-uid"), "42"
		sa.Finalizers = []string{"example.com/keep"}
		sa.Labels = map[string]string{vocab.LabelManagedBy: vocab.ManagedByValue}
		sa.Annotations = map[string]string{vocab.AnnotationRoleARN: "arn", corev1.LastAppliedConfigAnnotation: `{"big":"copy"}`, "team": "a"}
		yes := true
		sa.OwnerReferences = []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: "other", UID: "cm-uid"},
			{APIVersion: v1alpha1.GroupVersion.String(), Kind: "PodIdentityBinding", Name: "app", UID: "binding-uid", Controller: &yes, BlockOwnerDeletion: &yes},
		}
		sa.ManagedFields = []metav1.ManagedFieldsEntry{
			{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:team":{}}}}`)}, Time: &metav1.Time{Time: time.Now()}},
			{Manager: naming.FieldManager(b.Name), Operation: metav1.ManagedFieldsOperationApply, FieldsType: "FieldsV1", FieldsV1: ours},
		}
		return sa
	}
	answers := func(sa *metav1.PartialObjectMetadata) []bool {
		return []bool{ownsAnnotation(sa, b, vocab.AnnotationRoleARN), ownsAnnotation(sa, b, "team"), hasManager(sa, "kubectl-client-side-apply"),
			onlyManager(sa, naming.FieldManager(b.Name)), createdBy(sa, b)}
	}
	sa := newSA("app")
	before := answers(sa)
	out, err := objmeta.TrimMetadata(sa)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := out.(*metav1.PartialObjectMetadata)
	if after := answers(trimmed); !reflect.DeepEqual(before, after) || !reflect.DeepEqual(after, []bool{true, false, true, false, true}) {
		t.Errorf("answers before %v, after %v", before, after)
	}
	if trimmed.Name != "app" || trimmed.Namespace != "team-a" || trimmed.UID != "app-uid" || trimmed.ResourceVersion != "42" ||
		trimmed.GroupVersionKind() != objmeta.ServiceAccountMeta().GroupVersionKind() || len(trimmed.Finalizers) != 0 {
		t.Errorf("identity not kept (or finalizers kept): %+v", trimmed)
	}
	if want := map[string]string{vocab.AnnotationRoleARN: "arn"}; !reflect.DeepEqual(trimmed.Annotations, want) {
		t.Errorf("annotations %v, want %v", trimmed.Annotations, want)
	}
	if refs := trimmed.OwnerReferences; len(refs) != 1 || refs[0].UID != "binding-uid" || refs[0].Kind != "PodIdentityBinding" || refs[0].Name != "" {
		t.Errorf("owner references %+v, want the controller's kind and UID", refs)
	}
	if f := trimmed.ManagedFields[0]; f.FieldsV1 != nil || f.Time != nil || f.Operation != metav1.ManagedFieldsOperationUpdate {
		t.Errorf("other manager's entry kept %+v", f)
	}
	if got := string(trimmed.ManagedFields[1].FieldsV1.Raw); got != `{"f:metadata":{"f:annotations":{"f:`+vocab.AnnotationRoleARN+`":{}}}}` {
		t.Errorf("the operator's own field set became %s", got)
	}

	// Shared between ServiceAccounts: equal field sets, equal small label sets.
	other, _ := objmeta.TrimMetadata(newSA("other"))
	o := other.(*metav1.PartialObjectMetadata)
	if o.ManagedFields[1].FieldsV1 != trimmed.ManagedFields[1].FieldsV1 {
		t.Error("equal field sets are not shared")
	}
	if reflect.ValueOf(o.Labels).UnsafePointer() != reflect.ValueOf(trimmed.Labels).UnsafePointer() ||
		!reflect.DeepEqual(o.Labels, map[string]string{vocab.LabelManagedBy: vocab.ManagedByValue}) {
		t.Error("equal label sets are not shared")
	}
	// Not controlled by a binding: no owner kept, so not created by one.
	free := newSA("free")
	free.OwnerReferences = free.OwnerReferences[:1]
	if out, _ := objmeta.TrimMetadata(free); out.(*metav1.PartialObjectMetadata).OwnerReferences != nil || createdBy(out.(*metav1.PartialObjectMetadata), b) {
		t.Error("a non-controller owner was kept")
	}
	if out, err := objmeta.TrimMetadata("tombstone"); err != nil || out != "tombstone" {
		t.Errorf("%v %v", out, err)
	}
}
