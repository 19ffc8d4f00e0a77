package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/naming"
	"github.com/podidentity/podidentity-operator/internal/planner"
	"github.com/podidentity/podidentity-operator/internal/role"
)

// After any number of failures a binding is retried within the cap, so after
// an IAM outage every binding is back within one cap of IAM's recovery.
func TestFailureBackoffIsCapped(t *testing.T) {
	rl := failureRateLimiter(time.Minute)
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "b"}}
	var last time.Duration
	for range 40 {
		last = rl.When(req)
	}
	if last > time.Minute || last < 30*time.Second {
		t.Errorf("back-off after 40 failures = %s, want the 1m cap", last)
	}
	rl.Forget(req)
	if d := rl.When(req); d > time.Second {
		t.Errorf("back-off after success = %s", d)
	}
}

func TestNeedsReconcile(t *testing.T) {
	ready := func(status metav1.ConditionStatus, reason string) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, ObservedGeneration: 1}}
	}
	b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Generation: 1}, Status: v1alpha1.PodIdentityBindingStatus{
		RoleName: "r", ServiceAccountName: "sa", Conditions: ready(metav1.ConditionTrue, "Available")}}
	inSync := planner.Plan{Current: "r", ServiceAccount: "sa", Ready: true,
		Before: []planner.Action{{Op: planner.OpUpdate, Name: "r"}}}
	cases := map[string]struct {
		status []metav1.Condition
		plan   func(p *planner.Plan)
		want   bool
	}{
		"in sync":                 {plan: func(*planner.Plan) {}, want: false},
		"a write":                 {plan: func(p *planner.Plan) { p.Before[0].Op = planner.OpCreate }, want: true},
		"a role to retire":        {plan: func(p *planner.Plan) { p.After = []planner.Action{{Op: planner.OpDelete, Name: "old"}} }, want: true},
		"the annotation released": {plan: func(p *planner.Plan) { p.Current, p.ServiceAccount, p.Before = "", "", nil }, want: true},
		"the annotation moves":    {plan: func(p *planner.Plan) { p.ServiceAccount = "other" }, want: true},
		"no longer Ready":         {plan: func(p *planner.Plan) { p.Ready, p.Reason = false, "GuardrailViolation" }, want: true},
		"still the same failure": {status: ready(metav1.ConditionFalse, "GuardrailViolation"),
			plan: func(p *planner.Plan) { p.Ready, p.Reason = false, "GuardrailViolation" }, want: false},
	}
	for name, tc := range cases {
		bb := b.DeepCopy()
		if tc.status != nil {
			bb.Status.Conditions = tc.status
		}
		p := inSync
		p.Before = append([]planner.Action(nil), inSync.Before...)
		tc.plan(&p)
		if got := needsReconcile(bb, p); got != tc.want {
			t.Errorf("%s: needsReconcile = %v, want %v", name, got, tc.want)
		}
	}
}

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

// countingRoles is a RoleReader that counts reads and returns a fixed role.
type countingRoles struct {
	reads   int
	role    *role.Observed
	deleted []string
}

func (c *countingRoles) Observe(context.Context, string) (*role.Observed, error) {
	c.reads++
	return c.role, nil
}
func (c *countingRoles) Get(ctx context.Context, name string) (*role.Observed, error) {
	return c.Observe(ctx, name)
}
func (c *countingRoles) Create(context.Context, role.Desired) (string, string, error) {
	return "arn", "ID1", nil
}
func (c *countingRoles) Apply(context.Context, role.Desired, role.Plan) error { return nil }
func (c *countingRoles) Delete(_ context.Context, name, _ string) error {
	c.deleted = append(c.deleted, name)
	return nil
}

// Issue 17 defect 10: a delete goes only to the role ID it was planned
// against, and a snapshot that began before a delete does not bring the
// role back.
func TestRoleCacheDeleteConfirmsTheRoleID(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &role.Observed{ID: "RECREATED"}}
	c := &RoleCache{Inner: inner, TTL: time.Hour}
	c.Fill(map[string]*role.Observed{"r": {ID: "PLANNED"}}, time.Now().Add(-time.Minute))
	err := c.Delete(ctx, "r", "PLANNED")
	if err == nil || len(inner.deleted) != 0 {
		t.Fatalf("deleted a role re-created under the same name: err %v, deleted %v", err, inner.deleted)
	}
	if inner.reads != 1 {
		t.Errorf("confirmation reads = %d, want 1", inner.reads)
	}

	inner.role = &role.Observed{ID: "PLANNED"}
	before := time.Now()
	if err := c.Delete(ctx, "r", "PLANNED"); err != nil || len(inner.deleted) != 1 {
		t.Fatalf("delete of the planned role: err %v, deleted %v", err, inner.deleted)
	}
	c.Fill(map[string]*role.Observed{"r": {ID: "PLANNED"}}, before.Add(-time.Second))
	if o := c.Known("r"); o != nil {
		t.Errorf("a snapshot older than the delete brought the role back: %+v", o)
	}
	c.Fill(map[string]*role.Observed{"r": {ID: "NEW"}}, time.Now())
	if o := c.Known("r"); o == nil || o.ID != "NEW" {
		t.Errorf("a snapshot newer than the delete is ignored: %+v", o)
	}
}

// A snapshot that has not listed a role yet (Unlisted) takes the description
// and session duration the cache knew of the same role; a reconcile never
// plans with an Unlisted role, and a re-created role never inherits them.
func TestRoleCacheUnlistedRoles(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &role.Observed{ID: "ID9", Description: "read"}}
	c := &RoleCache{Inner: inner, TTL: time.Hour}
	c.Fill(map[string]*role.Observed{"known": {ID: "ID1", Description: "mine", MaxSessionDuration: 7200}}, time.Now())
	c.Fill(map[string]*role.Observed{
		"known":     {ID: "ID1", Unlisted: true},
		"recreated": {ID: "ID2", Unlisted: true},
	}, time.Now())
	o, err := c.Observe(ctx, "known")
	if err != nil || o.Unlisted || o.Description != "mine" || o.MaxSessionDuration != 7200 || inner.reads != 0 {
		t.Errorf("known role: %+v, %d reads, %v", o, inner.reads, err)
	}
	c.Fill(map[string]*role.Observed{"known": {ID: "ID3", Unlisted: true}}, time.Now())
	if o, _ := c.Observe(ctx, "known"); o.Description != "read" || inner.reads != 1 {
		t.Errorf("a role re-created under the name took the old values: %+v, %d reads", o, inner.reads)
	}
	if o, _ := c.Observe(ctx, "recreated"); o.Unlisted || inner.reads != 2 {
		t.Errorf("an Unlisted role was planned with: %+v, %d reads", o, inner.reads)
	}
}

// A snapshot replaces what the cache knew before it began, never what the
// operator read or wrote while it ran.
func TestRoleCacheFillKeepsNewerEntries(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &role.Observed{ID: "read"}}
	clk := clocktesting.NewFakeClock(time.Now())
	c := &RoleCache{Inner: inner, TTL: time.Hour, Clock: clk}
	c.Fill(map[string]*role.Observed{"old": {ID: "A"}, "changed": {ID: "B", Description: "before"}}, clk.Now())
	snapshotStart := clk.Now()
	clk.Step(time.Millisecond)
	if _, _, err := c.Create(ctx, role.Desired{Name: "created-during-sweep"}); err != nil {
		t.Fatal(err)
	}
	c.Fill(map[string]*role.Observed{"changed": {ID: "B", Description: "after"}}, snapshotStart)
	for name, want := range map[string]string{"created-during-sweep": "ID1", "changed": "B"} {
		o, err := c.Observe(ctx, name)
		if err != nil || o.ID != want {
			t.Errorf("%s: %+v %v", name, o, err)
		}
	}
	if o, _ := c.Observe(ctx, "changed"); o.Description != "after" {
		t.Errorf("the snapshot did not replace an older entry: %+v", o)
	}
	if inner.reads != 0 {
		t.Errorf("%d reads", inner.reads)
	}
	if o, _ := c.Observe(ctx, "old"); o.ID != "read" || inner.reads != 1 {
		t.Errorf("a role absent from the snapshot was kept: %+v", o)
	}
}

// Entries from a snapshot stay usable until the next sweep is overdue, however
// long sweeps take; then the role is read again.
func TestRoleCacheTTLAllowsForSlowSweeps(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &role.Observed{ID: "read"}}
	clk := clocktesting.NewFakeClock(time.Now())
	c := &RoleCache{Inner: inner, TTL: 300 * time.Millisecond, Clock: clk}
	// A sweep that took twice the TTL.
	c.Fill(map[string]*role.Observed{"r": {ID: "snap"}}, clk.Now().Add(-600*time.Millisecond))
	if o, _ := c.Observe(ctx, "r"); o.ID != "snap" || inner.reads != 0 {
		t.Errorf("an entry expired as the sweep delivered it: %+v, %d reads", o, inner.reads)
	}
	clk.Step(800 * time.Millisecond) // 1.4 s since the snapshot began, just inside TTL + 2 * 600ms = 1.5 s
	if o, _ := c.Observe(ctx, "r"); o.ID != "snap" || inner.reads != 0 {
		t.Errorf("an entry expired before the next sweep was overdue: %+v, %d reads", o, inner.reads)
	}
	clk.Step(200 * time.Millisecond) // past TTL + 2 * 600ms since the snapshot began
	if o, _ := c.Observe(ctx, "r"); o.ID != "read" || inner.reads != 1 {
		t.Errorf("an entry outlived an overdue sweep: %+v, %d reads", o, inner.reads)
	}
}

// The trimmed ServiceAccount still answers every question the operator asks
// of its managed fields, and keeps nothing else of other managers.
func TestTrimMetadata(t *testing.T) {
	b := &v1alpha1.PodIdentityBinding{ObjectMeta: metav1.ObjectMeta{Name: "app", UID: "binding-uid"}}
	ours := &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:` + AnnotationRoleARN + `":{}}}}`)}
	newSA := func(name string) *metav1.PartialObjectMetadata {
		sa := ServiceAccountMeta()
		sa.Name, sa.Namespace, sa.UID, sa.ResourceVersion = name, "team-a", types.UID(name+"-uid"), "42"
		sa.Finalizers = []string{"example.com/keep"}
		sa.Labels = map[string]string{LabelManagedBy: ManagedByValue}
		sa.Annotations = map[string]string{AnnotationRoleARN: "arn", corev1.LastAppliedConfigAnnotation: `{"big":"copy"}`, "team": "a"}
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
		return []bool{ownsAnnotation(sa, b, AnnotationRoleARN), ownsAnnotation(sa, b, "team"), hasManager(sa, "kubectl-client-side-apply"),
			onlyManager(sa, naming.FieldManager(b.Name)), createdBy(sa, b)}
	}
	sa := newSA("app")
	before := answers(sa)
	out, err := TrimMetadata(sa)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := out.(*metav1.PartialObjectMetadata)
	if after := answers(trimmed); !reflect.DeepEqual(before, after) || !reflect.DeepEqual(after, []bool{true, false, true, false, true}) {
		t.Errorf("answers before %v, after %v", before, after)
	}
	if trimmed.Name != "app" || trimmed.Namespace != "team-a" || trimmed.UID != "app-uid" || trimmed.ResourceVersion != "42" ||
		trimmed.GroupVersionKind() != ServiceAccountMeta().GroupVersionKind() || len(trimmed.Finalizers) != 0 {
		t.Errorf("identity not kept (or finalizers kept): %+v", trimmed)
	}
	if want := map[string]string{AnnotationRoleARN: "arn"}; !reflect.DeepEqual(trimmed.Annotations, want) {
		t.Errorf("annotations %v, want %v", trimmed.Annotations, want)
	}
	if refs := trimmed.OwnerReferences; len(refs) != 1 || refs[0].UID != "binding-uid" || refs[0].Kind != "PodIdentityBinding" || refs[0].Name != "" {
		t.Errorf("owner references %+v, want the controller's kind and UID", refs)
	}
	if f := trimmed.ManagedFields[0]; f.FieldsV1 != nil || f.Time != nil || f.Operation != metav1.ManagedFieldsOperationUpdate {
		t.Errorf("other manager's entry kept %+v", f)
	}
	if got := string(trimmed.ManagedFields[1].FieldsV1.Raw); got != `{"f:metadata":{"f:annotations":{"f:`+AnnotationRoleARN+`":{}}}}` {
		t.Errorf("the operator's own field set became %s", got)
	}

	// Shared between ServiceAccounts: equal field sets, equal small label sets.
	other, _ := TrimMetadata(newSA("other"))
	o := other.(*metav1.PartialObjectMetadata)
	if o.ManagedFields[1].FieldsV1 != trimmed.ManagedFields[1].FieldsV1 {
		t.Error("equal field sets are not shared")
	}
	if reflect.ValueOf(o.Labels).UnsafePointer() != reflect.ValueOf(trimmed.Labels).UnsafePointer() ||
		!reflect.DeepEqual(o.Labels, map[string]string{LabelManagedBy: ManagedByValue}) {
		t.Error("equal label sets are not shared")
	}
	// Not controlled by a binding: no owner kept, so not created by one.
	free := newSA("free")
	free.OwnerReferences = free.OwnerReferences[:1]
	if out, _ := TrimMetadata(free); out.(*metav1.PartialObjectMetadata).OwnerReferences != nil || createdBy(out.(*metav1.PartialObjectMetadata), b) {
		t.Error("a non-controller owner was kept")
	}
	if out, err := TrimMetadata("tombstone"); err != nil || out != "tombstone" {
		t.Errorf("%v %v", out, err)
	}
}

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
		sa.Annotations = map[string]string{"tenant.example.com/blob": big + strconv.Itoa(i), AnnotationRoleARN: big + strconv.Itoa(i)}
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
	if len(sa.Annotations) != 1 || len(sa.Annotations[AnnotationRoleARN]) != maxAnnotationValue || len(sa.Labels) != 0 || len(sa.ManagedFields) != 1 {
		t.Errorf("kept %d annotations (role-arn %d bytes), %d labels, %d managed fields", len(sa.Annotations), len(sa.Annotations[AnnotationRoleARN]), len(sa.Labels), len(sa.ManagedFields))
	}
	runtime.KeepAlive(kept)
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

// Issue 17 defect 11: the pod webhook answers only about the review's own
// namespace.
func TestPodWebhookAnswersOnlyForTheRequestNamespace(t *testing.T) {
	h := &PodIdentityInjector{Reader: fakeclient.NewClientBuilder().Build(), Decoder: admission.NewDecoder(clientgoscheme.Scheme)}
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"victim"},"spec":{"serviceAccountName":"app","containers":[{"name":"c","image":"i"}]}}`)
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Operation: admissionv1.Create, Namespace: "attacker",
		Object: k8sruntime.RawExtension{Raw: raw}}}
	if res := h.Handle(context.Background(), req); res.Allowed || res.Result == nil || res.Result.Code != 400 {
		t.Errorf("a pod of another namespace was answered: %+v", res)
	}
}

// Issue 17 defect 4: a namespace that floods the queue does not hold up
// another namespace's item; order within a namespace is kept.
func TestFairQueueServesAQuietNamespaceFirst(t *testing.T) {
	q := newFairQueue(logr.Discard())("test", workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	for i := range 500 {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "storm", Name: fmt.Sprintf("b%03d", i)}})
	}
	q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "quiet", Name: "new"}})
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() < 501 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the priority queue adds asynchronously
	}
	var order []string
	for range 501 {
		item, shutdown := q.Get()
		if shutdown {
			t.Fatal("shut down")
		}
		order = append(order, item.Namespace+"/"+item.Name)
		q.Done(item)
	}
	// The storm's first fairAddsPerStep items are not penalised yet; the
	// quiet namespace's item comes right after them, before the other 490.
	if i := slices.Index(order, "quiet/new"); i > fairAddsPerStep {
		t.Errorf("the quiet namespace's item was served %dth", i+1)
	}
	// Within the storm namespace, first in, first out.
	storm := slices.DeleteFunc(slices.Clone(order), func(s string) bool { return s == "quiet/new" })
	if !slices.IsSorted(storm) {
		t.Errorf("storm items out of order: %v", storm[:20])
	}
}

// Absent answers only from a fresh snapshot, and never for a role the
// operator has seen or lost track of since.
func TestRoleCacheAbsent(t *testing.T) {
	ctx := context.Background()
	inner := &countingRoles{role: &role.Observed{ID: "read"}}
	clk := clocktesting.NewFakeClock(time.Now())
	c := &RoleCache{Inner: inner, TTL: time.Minute, Clock: clk}
	if c.Absent("new") {
		t.Fatal("absent before any snapshot")
	}
	c.Fill(map[string]*role.Observed{"listed": {ID: "A"}}, clk.Now())
	if !c.Absent("new") || c.Absent("listed") {
		t.Errorf("new: %v, listed: %v", c.Absent("new"), c.Absent("listed"))
	}
	if _, err := c.Observe(ctx, "read-since"); err != nil || c.Absent("read-since") {
		t.Errorf("a role read since the snapshot is absent: %v", err)
	}
	c.forget("lost")
	if c.Absent("lost") {
		t.Errorf("a role forgotten after a failed call is absent")
	}
	clk.Step(2 * time.Minute)
	if c.Absent("new") {
		t.Errorf("absent from an expired snapshot")
	}
	c.Fill(map[string]*role.Observed{}, clk.Now())
	if !c.Absent("lost") {
		t.Errorf("a new snapshot does not settle a forgotten role")
	}
}
