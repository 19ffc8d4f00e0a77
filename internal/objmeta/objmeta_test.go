package objmeta

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

func TestStripApplyMetadata(t *testing.T) {
	b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Name: "b",
		Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"spec":{}}`, "team": "payments"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	out, err := StripApplyMetadata(b)
	if err != nil || out != b {
		t.Fatalf("%v %v", out, err)
	}
	if b.ManagedFields != nil || len(b.Annotations) != 1 || b.Annotations["team"] != "payments" {
		t.Errorf("managed fields %v, annotations %v", b.ManagedFields, b.Annotations)
	}
	only := &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: "{}"}}}
	_, _ = StripApplyMetadata(only)
	if only.Annotations != nil {
		t.Errorf("annotations %v", only.Annotations)
	}
	if out, err := StripApplyMetadata("tombstone"); err != nil || out != "tombstone" {
		t.Errorf("%v %v", out, err)
	}
}

func TestTrimBindingSharesRepeatedStringsAndChangesNothing(t *testing.T) {
	decode := func(i int) *v1alpha1.PodIdentityBinding {
		raw := fmt.Sprintf(`{"apiVersion":"iam.podidentity.io/v1alpha1","kind":"PodIdentityBinding",
			"metadata":{"name":"app-%[1]d","namespace":"team-a","finalizers":["iam.podidentity.io/finalizer"],
			  "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"},"managedFields":[{"manager":"kubectl"}]},
			"spec":{"serviceAccountName":"app-%[1]d","permissions":[{"effect":"Allow","actions":["dynamodb:GetItem"],"resources":["*"]}],
			  "deletionPolicy":"Delete","podRestartPolicy":"None"},
			"status":{"roleArn":"arn:aws:iam::123456789012:role/pi/pi-team-a-app-%[1]d","roleName":"pi-team-a-app-%[1]d","roleId":"AROA%[1]d",
			  "ownedRoles":[{"name":"pi-team-a-app-%[1]d","id":"AROA%[1]d"}],"serviceAccountName":"app-%[1]d",
			  "conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-11-27T19:30:05Z","reason":"Available","message":"m%[1]d"}]}}`, i)
		b := &v1alpha1.PodIdentityBinding{}
		if err := json.Unmarshal([]byte(raw), b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

	b1, b2 := decode(1), decode(2)
	want := b1.DeepCopy()
	want.ManagedFields, want.Annotations = nil, nil
	if _, err := TrimBinding(b1); err != nil {
		t.Fatal(err)
	}
	if _, err := TrimBinding(b2); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(b1, want) {
		t.Fatalf("trimming changed the binding:\n got %+v\nwant %+v", b1, want)
	}
	across := map[string][2]string{
		"apiVersion":       {b1.APIVersion, b2.APIVersion},
		"kind":             {b1.Kind, b2.Kind},
		"namespace":        {b1.Namespace, b2.Namespace},
		"finalizer":        {b1.Finalizers[0], b2.Finalizers[0]},
		"deletionPolicy":   {string(b1.Spec.DeletionPolicy), string(b2.Spec.DeletionPolicy)},
		"podRestartPolicy": {string(b1.Spec.PodRestartPolicy), string(b2.Spec.PodRestartPolicy)},
		"effect":           {string(b1.Spec.Permissions[0].Effect), string(b2.Spec.Permissions[0].Effect)},
		"action":           {b1.Spec.Permissions[0].Actions[0], b2.Spec.Permissions[0].Actions[0]},
		"condition type":   {b1.Status.Conditions[0].Type, b2.Status.Conditions[0].Type},
		"condition status": {string(b1.Status.Conditions[0].Status), string(b2.Status.Conditions[0].Status)},
		"condition reason": {b1.Status.Conditions[0].Reason, b2.Status.Conditions[0].Reason},
	}
	for field, v := range across {
		if !same(v[0], v[1]) {
			t.Errorf("%s: two copies across bindings", field)
		}
	}
	st := b1.Status
	if !same(st.ServiceAccountName, b1.Spec.ServiceAccountName) || !same(st.OwnedRoles[0].Name, st.RoleName) ||
		!same(st.OwnedRoles[0].ID, st.RoleID) || unsafe.StringData(st.RoleName) != unsafe.StringData(st.RoleArn[len(st.RoleArn)-len(st.RoleName):]) {
		t.Error("strings repeated within the binding are not shared")
	}
	if same(b1.Status.Conditions[0].Message, b2.Status.Conditions[0].Message) || same(b1.Name, b2.Name) {
		t.Error("distinct strings shared")
	}
	// A guardrail (or a tombstone) gets StripApplyMetadata.
	g := &v1alpha1.PodIdentityGuardrail{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	if out, err := TrimBinding(g); err != nil || out != g || g.ManagedFields != nil {
		t.Errorf("guardrail: %v %v", out, err)
	}
}

// Issue 17 defect 6: what a cached ServiceAccount costs does not grow with
// what tenants write on it. 1,000 ServiceAccounts with 250 KB of
// annotations, 100 labels and 100 field managers each keep well under 1 KB
// each once trimmed.
func TestTrimMetadataIsBoundedPerObject(t *testing.T) {
	big := strings.Repeat("x", 250*1024)
	var kept []any
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 1000 {
		sa := ServiceAccountMeta()
		sa.Name, sa.Namespace = fmt.Sprintf("sa-%d", i), "tenant"
		sa.Annotations = map[string]string{"tenant.example.com/blob": big + strconv.Itoa(i), vocab.AnnotationRoleARN: big + strconv.Itoa(i)}
		sa.Labels = map[string]string{}
		for j := range 100 {
			k := fmt.Sprintf("l%d-%d", i, j)
			sa.Labels[k] = k
			sa.ManagedFields = append(sa.ManagedFields, metav1.ManagedFieldsEntry{Manager: "m-" + k, Operation: metav1.ManagedFieldsOperationApply})
		}
		out, err := TrimMetadata(sa)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, out)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perObject := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / 1000
	if perObject > 4096 {
		t.Errorf("a trimmed ServiceAccount keeps %d bytes", perObject)
	}
	sa := kept[0].(*metav1.PartialObjectMetadata)
	if len(sa.Annotations) != 1 || len(sa.Annotations[vocab.AnnotationRoleARN]) != maxAnnotationValue || len(sa.Labels) != 0 || len(sa.ManagedFields) != 1 {
		t.Errorf("kept %d annotations (role-arn %d bytes), %d labels, %d managed fields", len(sa.Annotations), len(sa.Annotations[vocab.AnnotationRoleARN]), len(sa.Labels), len(sa.ManagedFields))
	}
	runtime.KeepAlive(kept)
}
