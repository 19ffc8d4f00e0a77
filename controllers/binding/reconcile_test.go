package binding

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
	"github.com/podidentity/podidentity-operator/controllers/guardrail"
	"github.com/podidentity/podidentity-operator/internal/bindingindex"
	"github.com/podidentity/podidentity-operator/internal/catalog"
	"github.com/podidentity/podidentity-operator/internal/eksassoc"
	"github.com/podidentity/podidentity-operator/internal/guard"
	"github.com/podidentity/podidentity-operator/internal/identity"
	"github.com/podidentity/podidentity-operator/internal/role"
	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// Reconciler unit tests: Reconcile against controller-runtime's fake client
// and in-memory IAM and EKS clients, so that each branch of the reconciler
// (apply steps in order, report, turn errors into conditions and requeue
// decisions) is tested in milliseconds. The envtest + moto suites test the
// same paths over the wire.

// memRoles is IAM's roles in memory, with calls counted and failures
// injected per operation.
type memRoles struct {
	mu    sync.Mutex
	roles map[string]*role.Observed
	calls map[string]int
	fail  map[string]error // by operation: Observe, Create, Apply, Delete
	next  int
}

func newMemRoles() *memRoles {
	return &memRoles{roles: map[string]*role.Observed{}, calls: map[string]int{}, fail: map[string]error{}}
}

func (m *memRoles) call(op string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[op]++
	return m.fail[op]
}

func (m *memRoles) Observe(_ context.Context, name string) (*role.Observed, error) {
	return m.read("Observe", name)
}

// read is a GetRole: a copy of the role, nil when there is none.
func (m *memRoles) read(op, name string) (*role.Observed, error) {
	if err := m.call(op); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.roles[name]; o != nil {
		c := *o
		return &c, nil
	}
	return nil, nil
}

func (m *memRoles) Create(_ context.Context, d role.Desired) (string, string, error) {
	if err := m.call("Create"); err != nil {
		return "", "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.roles[d.Name] != nil {
		return "", "", apiError("EntityAlreadyExists", smithy.FaultClient)
	}
	m.next++
	arn, id := "arn:aws:iam::123456789012:role"+d.Path+d.Name, fmt.Sprintf("AROAUNIT%d", m.next)
	m.roles[d.Name] = role.Created(d, arn, id)
	return arn, id, nil
}

func (m *memRoles) Apply(_ context.Context, d role.Desired, p role.Plan) error {
	if err := m.call("Apply"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.roles[d.Name]
	if o == nil {
		return errors.New("NoSuchEntity")
	}
	m.roles[d.Name] = role.Applied(d, *o, p)
	return nil
}

func (m *memRoles) Delete(_ context.Context, name, id string) error {
	if err := m.call("Delete"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.roles[name]; o != nil && o.ID == id {
		delete(m.roles, name)
	}
	return nil
}

// Get is GetRole (role.Store).
func (m *memRoles) Get(_ context.Context, name string) (*role.Observed, error) {
	return m.read("Get", name)
}

func (m *memRoles) get(name string) *role.Observed {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.roles[name]
}

// memAssociations is EKS's pod identity associations of one cluster.
type memAssociations struct {
	mu    sync.Mutex
	byID  map[string]*eksassoc.Association
	calls map[string]int
	fail  map[string]error
	next  int
}

func newMemAssociations() *memAssociations {
	return &memAssociations{byID: map[string]*eksassoc.Association{}, calls: map[string]int{}, fail: map[string]error{}}
}

func (m *memAssociations) call(op string) error {
	m.calls[op]++
	return m.fail[op]
}

func (m *memAssociations) copyOf(a *eksassoc.Association) *eksassoc.Association {
	c := *a
	c.Tags = maps.Clone(a.Tags)
	return &c
}

func (m *memAssociations) Find(_ context.Context, ns, sa string) (*eksassoc.Association, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.call("Find"); err != nil {
		return nil, err
	}
	for _, a := range m.byID {
		if a.Namespace == ns && a.ServiceAccount == sa {
			return m.copyOf(a), nil
		}
	}
	return nil, nil
}

func (m *memAssociations) Get(_ context.Context, id string) (*eksassoc.Association, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.call("Get"); err != nil {
		return nil, err
	}
	if a := m.byID[id]; a != nil {
		return m.copyOf(a), nil
	}
	return nil, nil
}

func (m *memAssociations) Create(_ context.Context, ns, sa, roleARN, target, _ string, tags map[string]string) (*eksassoc.Association, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.call("Create"); err != nil {
		return nil, err
	}
	m.next++
	id := fmt.Sprintf("a-unit%d", m.next)
	a := &eksassoc.Association{ID: id, ARN: "arn:aws:eks:us-east-1:123456789012:podidentityassociation/dev/" + id,
		Namespace: ns, ServiceAccount: sa, RoleARN: roleARN, Tags: maps.Clone(tags), TargetRoleARN: target}
	if target != "" {
		a.ExternalID = "ext-" + id
	}
	m.byID[id] = a
	return m.copyOf(a), nil
}

func (m *memAssociations) Converge(_ context.Context, id, roleARN, target string) (*eksassoc.Association, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.call("Converge"); err != nil {
		return nil, err
	}
	a := m.byID[id]
	a.RoleARN, a.TargetRoleARN, a.SessionTagsDisabled = roleARN, target, false
	if target != "" && a.ExternalID == "" {
		a.ExternalID = "ext-" + id
	}
	return m.copyOf(a), nil
}

func (m *memAssociations) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.call("Delete"); err != nil {
		return err
	}
	delete(m.byID, id)
	return nil
}

func (m *memAssociations) Tag(_ context.Context, arn string, tags map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.call("Tag"); err != nil {
		return err
	}
	for _, a := range m.byID {
		if a.ARN == arn {
			maps.Copy(a.Tags, tags)
		}
	}
	return nil
}

func (m *memAssociations) IDs(context.Context) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for id, a := range m.byID {
		out[a.Namespace+"/"+a.ServiceAccount] = id
	}
	return out, nil
}

func (m *memAssociations) all() []eksassoc.Association {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []eksassoc.Association
	for _, a := range m.byID {
		out = append(out, *m.copyOf(a))
	}
	return out
}

type noManagedPolicies struct{}

func (noManagedPolicies) Read(context.Context, []string) (guard.Managed, error) {
	return guard.Managed{}, nil
}

// unitBed is one reconciler over the fake client and in-memory clouds.
type unitBed struct {
	t      *testing.T
	c      client.WithWatch
	r      *Reconciler
	roles  *memRoles
	assocs *memAssociations
	events *events.FakeRecorder
}

const unitNS = "team"

func newUnitBed(t *testing.T, objs ...client.Object) *unitBed {
	return newUnitBedWith(t, interceptor.Funcs{SubResourceApply: statusApplyOfExisting}, objs...)
}

// statusApplyOfExisting applies to a subresource as the API server does:
// the object must exist (the fake client would create it).
func statusApplyOfExisting(ctx context.Context, c client.Client, sub string, obj k8sruntime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	u, ok := obj.(interface {
		GetName() string
		GetNamespace() string
	})
	if !ok {
		return fmt.Errorf("unexpected apply configuration %T", obj)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()}, &v1alpha1.PodIdentityBinding{}); err != nil {
		return err
	}
	return c.SubResource(sub).Apply(ctx, obj, opts...)
}

// newUnitBedWith is newUnitBed with the fake client's calls intercepted.
func newUnitBedWith(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *unitBed {
	t.Helper()
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	// The binding CRD is there: a binding deleted on its own is not one
	// going with its CRD (crdBeingDeleted).
	objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: unitNS}},
		&apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: bindingCRD}})
	c := fakeclient.NewClientBuilder().WithScheme(scheme).
		WithStatusSubresource(&v1alpha1.PodIdentityBinding{}).WithReturnManagedFields().
		WithIndex(&v1alpha1.PodIdentityBinding{}, bindingindex.ServiceAccounts, func(o client.Object) []string {
			return bindingindex.ServiceAccountsOf(o.(*v1alpha1.PodIdentityBinding))
		}).
		WithObjects(objs...).WithInterceptorFuncs(funcs).Build()
	cfg := role.Config{ClusterName: "dev", RolePath: "/podidentity/",
		ProviderARN: "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X", Issuer: "oidc.example.com/id/X",
		PodIdentity: &identity.PodIdentity{Account: "123456789012", ClusterARN: "arn:aws:eks:us-east-1:123456789012:cluster/dev"}}
	bed := &unitBed{t: t, c: c, roles: newMemRoles(), assocs: newMemAssociations(), events: events.NewFakeRecorder(100)}
	bed.r = &Reconciler{Client: c, APIReader: c, Recorder: bed.events, Roles: bed.roles, Policies: noManagedPolicies{},
		Config: cfg, Guard: guard.Checker{Catalog: catalog.Default(), Builtins: true, RoleConfig: cfg},
		Guardrails: guardrail.Source{Reader: c, APIReader: c}, Associations: bed.assocs, SyncPeriod: time.Hour}
	return bed
}

func unitBinding(name, sa string, mutate ...func(*v1alpha1.PodIdentityBinding)) *v1alpha1.PodIdentityBinding {
	b := &v1alpha1.PodIdentityBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: unitNS, Name: name, UID: types.UID(name + "-uid"), Generation: 1},
		Spec: v1alpha1.PodIdentityBindingSpec{ServiceAccountName: sa, DeletionPolicy: v1alpha1.DeletionPolicyDelete,
			Permissions: []v1alpha1.PermissionStatement{{Effect: v1alpha1.EffectAllow, Actions: []string{"dynamodb:GetItem"},
				Resources: []string{"arn:aws:dynamodb:us-east-1:123456789012:table/orders"}}}},
	}
	for _, m := range mutate {
		m(b)
	}
	return b
}

// reconcile runs one Reconcile of the binding.
func (u *unitBed) reconcile(name string) (ctrl.Result, error) {
	return u.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: unitNS, Name: name}})
}

// settle reconciles until a reconcile changes nothing in IAM or the API
// server and asks for no immediate retry (at most n times).
func (u *unitBed) settle(name string, n int) (ctrl.Result, error) {
	var (
		res ctrl.Result
		err error
	)
	for range n {
		before := u.binding(name)
		if res, err = u.reconcile(name); err != nil {
			return res, err
		}
		after := u.binding(name)
		if before != nil && after != nil && before.ResourceVersion == after.ResourceVersion {
			return res, nil
		}
		if after == nil {
			return res, nil
		}
	}
	return res, err
}

func (u *unitBed) binding(name string) *v1alpha1.PodIdentityBinding {
	b := &v1alpha1.PodIdentityBinding{}
	if err := u.c.Get(context.Background(), types.NamespacedName{Namespace: unitNS, Name: name}, b); err != nil {
		return nil
	}
	return b
}

func (u *unitBed) serviceAccount(name string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{}
	if err := u.c.Get(context.Background(), types.NamespacedName{Namespace: unitNS, Name: name}, sa); err != nil {
		return nil
	}
	return sa
}

func (u *unitBed) condition(name, condType string) metav1.Condition {
	u.t.Helper()
	b := u.binding(name)
	if b == nil {
		u.t.Fatalf("binding %s is gone", name)
	}
	c := meta.FindStatusCondition(b.Status.Conditions, condType)
	if c == nil {
		u.t.Fatalf("binding %s has no %s condition: %+v", name, condType, b.Status.Conditions)
	}
	return *c
}

// drainEvents returns the events recorded so far ("Type Reason note").
func (u *unitBed) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-u.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func apiError(code string, fault smithy.ErrorFault) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " (injected)", Fault: fault}
}

func TestReconcileCreatesRoleAndAnnotatesServiceAccount(t *testing.T) {
	u := newUnitBed(t, unitBinding("app", "app"))
	res, err := u.settle("app", 5)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter <= 0 {
		t.Errorf("an in-sync binding without a sweep is resynced at the period, got %+v", res)
	}
	b := u.binding("app")
	if !strings.Contains(strings.Join(b.Finalizers, ","), vocab.Finalizer) {
		t.Errorf("finalizers %v", b.Finalizers)
	}
	if c := u.condition("app", v1alpha1.ConditionReady); c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonAvailable {
		t.Errorf("Ready %+v", c)
	}
	o := u.roles.get(b.Status.RoleName)
	if o == nil || o.ARN != b.Status.RoleArn || o.ID != b.Status.RoleID {
		t.Fatalf("role %s in IAM: %+v; status %+v", b.Status.RoleName, o, b.Status)
	}
	want := role.DesiredFor(u.r.Config, b).Trust
	if o.Trust != want.Fingerprint() {
		t.Errorf("trust is not the binding's exact trust")
	}
	sa := u.serviceAccount("app")
	if sa == nil || sa.Annotations[vocab.AnnotationRoleARN] != b.Status.RoleArn {
		t.Fatalf("ServiceAccount %+v", sa)
	}
	// The binding created the ServiceAccount: it is labelled and owned.
	if ref := metav1.GetControllerOf(sa); ref == nil || ref.UID != b.UID {
		t.Errorf("ServiceAccount owner %+v", sa.OwnerReferences)
	}
	if u.roles.calls["Create"] != 1 || u.roles.calls["Delete"] != 0 {
		t.Errorf("IAM calls %v", u.roles.calls)
	}
	// Reconciling again changes nothing.
	rv := b.ResourceVersion
	if _, err := u.reconcile("app"); err != nil {
		t.Fatal(err)
	}
	if u.binding("app").ResourceVersion != rv || u.roles.calls["Create"] != 1 || u.roles.calls["Apply"] != 0 {
		t.Errorf("a second reconcile wrote: %v", u.roles.calls)
	}
}

// Errors become conditions and requeue decisions in one place (failure).
func TestReconcileTurnsErrorsIntoConditions(t *testing.T) {
	tests := []struct {
		name       string
		op         string
		err        error
		wantReason string
		wantErr    bool // back to the rate-limited queue
	}{
		{"IAM throttles: retried with back-off", "Create", apiError("Throttling", smithy.FaultServer), v1alpha1.ReasonIAMUnavailable, true},
		{"IAM rejects: reported, retried at the period", "Create", apiError("AccessDenied", smithy.FaultClient), v1alpha1.ReasonIAMRequestRejected, false},
		{"a read fails: nothing is written", "Observe", apiError("ServiceFailure", smithy.FaultServer), v1alpha1.ReasonIAMUnavailable, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnitBed(t, unitBinding("app", "app"))
			u.roles.fail[tt.op] = tt.err
			res, err := u.reconcile("app")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && res.RequeueAfter <= 0 {
				t.Errorf("a rejected request is retried at the sync period, got %+v", res)
			}
			if c := u.condition("app", v1alpha1.ConditionReady); c.Reason != tt.wantReason || c.Status != metav1.ConditionFalse {
				t.Errorf("Ready %+v, want %s", c, tt.wantReason)
			}
			if c := u.condition("app", v1alpha1.ConditionRoleSynced); c.Reason != tt.wantReason {
				t.Errorf("RoleSynced %+v", c)
			}
			if u.serviceAccount("app") != nil {
				t.Errorf("the ServiceAccount was written although the role was not")
			}
			// The fault clears: the next reconcile converges.
			delete(u.roles.fail, tt.op)
			if _, err := u.settle("app", 5); err != nil {
				t.Fatal(err)
			}
			if c := u.condition("app", v1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
				t.Errorf("after the fault: Ready %+v", c)
			}
		})
	}
}

func TestReconcileDeletion(t *testing.T) {
	for _, policy := range []v1alpha1.DeletionPolicy{v1alpha1.DeletionPolicyDelete, v1alpha1.DeletionPolicyRetain} {
		t.Run(string(policy), func(t *testing.T) {
			u := newUnitBed(t, unitBinding("app", "app", func(b *v1alpha1.PodIdentityBinding) { b.Spec.DeletionPolicy = policy }))
			if _, err := u.settle("app", 5); err != nil {
				t.Fatal(err)
			}
			name := u.binding("app").Status.RoleName
			// A failing delete keeps the finalizer and says why.
			u.roles.fail["Delete"] = apiError("ServiceFailure", smithy.FaultServer)
			if err := u.c.Delete(context.Background(), u.binding("app")); err != nil {
				t.Fatal(err)
			}
			_, err := u.reconcile("app")
			if policy == v1alpha1.DeletionPolicyDelete {
				if err == nil {
					t.Fatalf("a failed delete is retried; status %+v; roles %v", u.binding("app").Status, u.roles.calls)
				}
				if c := u.condition("app", v1alpha1.ConditionReady); c.Reason != v1alpha1.ReasonDeleteFailed {
					t.Errorf("Ready %+v", c)
				}
			}
			delete(u.roles.fail, "Delete")
			if _, err := u.settle("app", 5); err != nil {
				t.Fatal(err)
			}
			if u.binding("app") != nil {
				t.Fatalf("the finalizer stayed: %+v", u.binding("app").Finalizers)
			}
			o := u.roles.get(name)
			switch policy {
			case v1alpha1.DeletionPolicyDelete:
				if o != nil {
					t.Errorf("role %s left behind", name)
				}
				if u.serviceAccount("app") != nil {
					t.Errorf("the ServiceAccount the binding created is left behind")
				}
			case v1alpha1.DeletionPolicyRetain:
				if v, _ := role.TagValue(o.Tags, role.TagRetained); o == nil || v != "true" {
					t.Errorf("retained role %+v", o)
				}
				if sa := u.serviceAccount("app"); sa == nil || sa.Annotations[vocab.AnnotationRoleARN] != o.ARN {
					t.Errorf("a retained ServiceAccount keeps its annotation: %+v", sa)
				}
			}
		})
	}
}

func TestReconcileServiceAccountConflict(t *testing.T) {
	older := unitBinding("older", "shared")
	older.CreationTimestamp = metav1.NewTime(time.Now().Add(-time.Hour))
	newer := unitBinding("newer", "shared")
	newer.CreationTimestamp = metav1.NewTime(time.Now())
	u := newUnitBed(t, older, newer)
	if _, err := u.settle("older", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := u.settle("newer", 5); err != nil {
		t.Fatal(err)
	}
	if c := u.condition("newer", v1alpha1.ConditionReady); c.Reason != v1alpha1.ReasonServiceAccountConflict ||
		!strings.Contains(c.Message, "older") {
		t.Errorf("Ready %+v", c)
	}
	if c := u.condition("newer", v1alpha1.ConditionServiceAccountSynced); c.Status != metav1.ConditionFalse {
		t.Errorf("ServiceAccountSynced %+v", c)
	}
	if n := u.binding("newer").Status.RoleName; n != "" || u.roles.calls["Create"] != 1 {
		t.Errorf("the newer binding got a role %q: %v", n, u.roles.calls)
	}
	if sa := u.serviceAccount("shared"); sa.Annotations[vocab.AnnotationRoleARN] != u.binding("older").Status.RoleArn {
		t.Errorf("the older binding lost its ServiceAccount: %v", sa.Annotations)
	}
}

func TestReconcilePodIdentity(t *testing.T) {
	eks := func(b *v1alpha1.PodIdentityBinding) { b.Spec.Identity = v1alpha1.IdentityEKSPodIdentity }

	t.Run("an owned association, then IRSA again", func(t *testing.T) {
		u := newUnitBed(t, unitBinding("app", "app", eks))
		if _, err := u.settle("app", 5); err != nil {
			t.Fatal(err)
		}
		b := u.binding("app")
		as := u.assocs.all()
		if len(as) != 1 || as[0].ID != b.Status.AssociationID || as[0].RoleARN != b.Status.RoleArn || !ownsAssociation(u.r.Config, &as[0], b) {
			t.Fatalf("associations %+v, status %+v", as, b.Status)
		}
		if c := u.condition("app", v1alpha1.ConditionServiceAccountSynced); !strings.Contains(c.Message, "EKS pod identity association") {
			t.Errorf("ServiceAccountSynced %+v", c)
		}
		if _, ok := u.serviceAccount("app").Annotations[vocab.AnnotationRoleARN]; ok {
			t.Errorf("a Pod Identity ServiceAccount carries the IRSA annotation")
		}
		// Back to IRSA: annotated first, then the association goes.
		b.Spec.Identity = v1alpha1.IdentityIRSA
		b.Generation++
		if err := u.c.Update(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if _, err := u.settle("app", 5); err != nil {
			t.Fatal(err)
		}
		if len(u.assocs.all()) != 0 || u.serviceAccount("app").Annotations[vocab.AnnotationRoleARN] == "" {
			t.Errorf("associations %+v, annotations %v", u.assocs.all(), u.serviceAccount("app").Annotations)
		}
		if b := u.binding("app"); b.Status.Identity != v1alpha1.IdentityIRSA || b.Status.AssociationID != "" {
			t.Errorf("status %+v", b.Status)
		}
	})

	t.Run("a foreign association is never overwritten", func(t *testing.T) {
		u := newUnitBed(t, unitBinding("app", "app", eks))
		foreign, _ := u.assocs.Create(context.Background(), unitNS, "app", "arn:aws:iam::123456789012:role/other", "", "", map[string]string{"owner": "someone"})
		res, err := u.settle("app", 5)
		if err != nil {
			t.Fatal(err)
		}
		if c := u.condition("app", v1alpha1.ConditionReady); c.Reason != v1alpha1.ReasonAssociationConflict || !strings.Contains(c.Message, foreign.ID) {
			t.Errorf("Ready %+v", c)
		}
		if res.RequeueAfter <= 0 {
			t.Errorf("a conflict is looked at again at the period: %+v", res)
		}
		if a, _ := u.assocs.Get(context.Background(), foreign.ID); a.RoleARN != foreign.RoleARN || u.assocs.calls["Converge"] != 0 {
			t.Errorf("the foreign association was changed: %+v", a)
		}
		if u.roles.calls["Create"] != 0 {
			t.Errorf("a role was created for a ServiceAccount the binding cannot hold: %v", u.roles.calls)
		}
	})

	t.Run("EKS failures", func(t *testing.T) {
		for _, tt := range []struct {
			err     error
			reason  string
			wantErr bool
		}{
			{apiError("ServerException", smithy.FaultServer), v1alpha1.ReasonEKSUnavailable, true},
			{apiError("AccessDeniedException", smithy.FaultClient), v1alpha1.ReasonEKSRequestRejected, false},
		} {
			u := newUnitBed(t, unitBinding("app", "app", eks))
			u.assocs.fail["Create"] = tt.err
			_, err := u.settle("app", 5)
			if (err != nil) != tt.wantErr {
				t.Errorf("%s: err = %v", tt.reason, err)
			}
			if c := u.condition("app", v1alpha1.ConditionServiceAccountSynced); c.Reason != tt.reason {
				t.Errorf("ServiceAccountSynced %+v, want %s", c, tt.reason)
			}
			if c := u.condition("app", v1alpha1.ConditionRoleSynced); c.Status == metav1.ConditionFalse {
				t.Errorf("the role is fine; RoleSynced %+v", c)
			}
		}
	})
}

// A refused status write is visible (metric and event), and the error
// goes back to the queue.
func TestReconcileStatusWriteFailureIsVisible(t *testing.T) {
	writes := 0
	u := newUnitBedWith(t, interceptor.Funcs{
		SubResourceApply: func(context.Context, client.Client, string, k8sruntime.ApplyConfiguration, ...client.SubResourceApplyOption) error {
			writes++
			return apierrors.NewInvalid(v1alpha1.GroupVersion.WithKind("PodIdentityBinding").GroupKind(), "app", nil)
		},
	}, unitBinding("app", "app"))
	before := testutil.ToFloat64(statusWriteFailures.WithLabelValues("Invalid"))
	_, err := u.reconcile("app")
	if err == nil || !strings.Contains(err.Error(), "patching status") {
		t.Fatalf("err = %v", err)
	}
	if writes == 0 {
		t.Fatalf("the status was never written")
	}
	if !strings.Contains(strings.Join(u.drainEvents(), "\n"), string(vocab.EventStatusWriteFailed)) {
		t.Errorf("no %s event", vocab.EventStatusWriteFailed)
	}
	if got := testutil.ToFloat64(statusWriteFailures.WithLabelValues("Invalid")); got != before+1 {
		t.Errorf("status write failures %v -> %v", before, got)
	}
}

// Issue 19, cost per binding: with a fresh sweep snapshot that does not list
// its generated name, a new binding costs IAM its two writes and no read;
// a role of that name that exists after all is never written to.
func TestReconcileNewBindingReadsNoRole(t *testing.T) {
	setup := func(t *testing.T) (*unitBed, *role.Cache) {
		u := newUnitBed(t, unitBinding("app", "app"))
		cache := &role.Cache{Inner: u.roles, TTL: time.Hour}
		cache.Fill(map[string]*role.Observed{}, time.Now())
		u.r.Roles, u.r.Sweep = cache, &Sweeper{}
		return u, cache
	}
	t.Run("absent from the snapshot: created without a read", func(t *testing.T) {
		u, _ := setup(t)
		if _, err := u.settle("app", 5); err != nil {
			t.Fatal(err)
		}
		if c := u.condition("app", v1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
			t.Fatalf("Ready %+v", c)
		}
		if u.roles.calls["Observe"] != 0 || u.roles.calls["Get"] != 0 || u.roles.calls["Create"] != 1 {
			t.Errorf("IAM calls %v, want one create and no read", u.roles.calls)
		}
	})
	t.Run("created since the snapshot by someone else: the create fails, the retry reads it and never writes it", func(t *testing.T) {
		u, _ := setup(t)
		name := role.Name(u.r.Config, unitBinding("app", "app"))
		foreign := &role.Observed{ARN: "arn:aws:iam::123456789012:role/podidentity/" + name, ID: "AROAFOREIGN", Tags: map[string]string{}}
		u.roles.roles[name] = foreign
		if _, err := u.reconcile("app"); err == nil {
			t.Fatal("the failed create is retried")
		}
		if _, err := u.settle("app", 5); err != nil {
			t.Fatal(err)
		}
		if c := u.condition("app", v1alpha1.ConditionReady); c.Reason != v1alpha1.ReasonRoleConflict {
			t.Errorf("Ready %+v", c)
		}
		if u.roles.calls["Apply"] != 0 || u.roles.calls["Delete"] != 0 || u.roles.get(name) != foreign {
			t.Errorf("the foreign role was written: %v", u.roles.calls)
		}
	})
	t.Run("deleting, or a name the binding records: always read", func(t *testing.T) {
		u, _ := setup(t)
		b := u.binding("app")
		if got := u.r.unreadTarget(b, u.r.home()); got == "" {
			t.Fatalf("a new binding's name is not taken as absent")
		}
		b.Status.OwnedRoles = []v1alpha1.RoleReference{{Name: role.Name(u.r.Config, b)}}
		if got := u.r.unreadTarget(b, u.r.home()); got != "" {
			t.Errorf("a name status records is taken as absent")
		}
		b.Status.OwnedRoles = nil
		now := metav1.Now()
		b.DeletionTimestamp = &now
		if got := u.r.unreadTarget(b, u.r.home()); got != "" {
			t.Errorf("a deleted binding's name is taken as absent")
		}
		b.DeletionTimestamp = nil
		b.Spec.RoleName = "team_explicit"
		if got := u.r.unreadTarget(b, u.r.home()); got != "" {
			t.Errorf("an explicit roleName is taken as absent")
		}
	})
}
