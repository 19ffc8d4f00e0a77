package pods

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// Issue 17 defect 9, the half a cluster's garbage collector hides: pods whose
// owner reference names a workload by name with a UID that is not its own.
// On a cluster the garbage collector deletes such pods soon after they are
// created (their owner, by UID, does not exist), so the envtest spec (which
// runs kube-controller-manager) can only use real UIDs; until then the
// operator must count them as bare and never follow the name.
func TestOwnersFollowOnlyRealUIDs(t *testing.T) {
	const ns = "team"
	tmpl := func(sa string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: sa}}
	}
	critical := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "critical", UID: "critical-uid"},
		Spec: appsv1.DeploymentSpec{Template: tmpl("payments")}}
	own := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "own", UID: "own-uid"},
		Spec: appsv1.DeploymentSpec{Template: tmpl("app")}}
	controlledBy := func(kind, name string, uid types.UID) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}}
	}
	criticalRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "critical-1", UID: "critical-rs-uid",
		OwnerReferences: controlledBy("Deployment", "critical", critical.UID)}}
	ownRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "own-1", UID: "own-rs-uid",
		OwnerReferences: controlledBy("Deployment", "own", own.UID)}}
	statefulSet := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db", UID: "db-uid"},
		Spec: appsv1.StatefulSetSpec{Template: tmpl("payments")}}
	pod := func(name string, refs []metav1.OwnerReference) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: refs}}
	}
	pods := []*corev1.Pod{
		pod("by-name", controlledBy("Deployment", "critical", "made-up")),
		pod("by-uid", controlledBy("Deployment", "critical", critical.UID)), // a pod is never controlled by a Deployment
		pod("via-rs", controlledBy("ReplicaSet", criticalRS.Name, criticalRS.UID)),
		pod("via-rs-name", controlledBy("ReplicaSet", criticalRS.Name, "made-up")),
		pod("sts-name", controlledBy("StatefulSet", "db", "made-up")),
		pod("sts-uid", controlledBy("StatefulSet", "db", statefulSet.UID)), // runs as payments, not app
		pod("own-1-a", controlledBy("ReplicaSet", ownRS.Name, ownRS.UID)),
		pod("own-1-b", controlledBy("ReplicaSet", ownRS.Name, ownRS.UID)),
	}
	c := fakeclient.NewClientBuilder().WithScheme(clientgoscheme.Scheme).
		WithObjects(critical, own, criticalRS, ownRS, statefulSet).Build()
	r := &Reconciler{APIReader: c}
	got, bare, err := r.owners(context.Background(), pods, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].obj.GetName() != "own" || got[0].kind != "Deployment" {
		t.Errorf("workloads %v: want only Deployment own", got)
	}
	if bare != 6 {
		t.Errorf("%d pods without a workload of the binding: want 6 (every forged reference)", bare)
	}
}
