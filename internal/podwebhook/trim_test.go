package podwebhook

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// typicalPod is a Deployment's pod as the API server returns it: two
// containers with probes, resources and environment, an injected token,
// labels, annotations, managed fields and status.
func typicalPod(i int) *corev1.Pod {
	container := func(name string) corev1.Container {
		c := corev1.Container{Name: name, Image: "registry.example.com/team/" + name + ":1.2.3",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready"}}},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}}},
			VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
				{Name: VolumeName, MountPath: MountPath, ReadOnly: true}, {Name: "config", MountPath: "/etc/app"}},
		}
		for k := range 8 {
			c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("APP_SETTING_%d", k), Value: strings.Repeat("v", 24)})
		}
		c.Env = append(c.Env, corev1.EnvVar{Name: EnvRoleARN, Value: "arn:aws:iam::123456789012:role/podidentity/team_app"},
			corev1.EnvVar{Name: EnvTokenFile, Value: TokenFile})
		return c
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-7d9f8c6b5-%05d", i), Namespace: "team", UID: types.UID(fmt.Sprintf("uid-%08d", i)),
			ResourceVersion: "123456", Labels: map[string]string{"app": "app", "pod-template-hash": "7d9f8c6b5", "team": "orders", "version": "1.2.3"},
			Annotations:     map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-27T10:00:00Z", "prometheus.io/scrape": "true"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "app-7d9f8c6b5", UID: "rs-uid", Controller: ptr.To(true)}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
				FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(strings.Repeat(`{"f:spec":{"f:containers":{}}}`, 40))}},
				{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Subresource: "status",
					FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(strings.Repeat(`{"f:status":{"f:conditions":{}}}`, 30))}}}},
		Spec: corev1.PodSpec{ServiceAccountName: "app", NodeName: "ip-10-0-1-23.eu-west-1.compute.internal",
			Containers: []corev1.Container{container("app"), container("sidecar")},
			Volumes: []corev1.Volume{{Name: VolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: DefaultAudience, ExpirationSeconds: ptr.To(DefaultExpiration), Path: "token"}}}}}},
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}}},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.1.45", HostIP: "10.0.1.23",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}, {Type: corev1.PodScheduled, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, Image: "registry.example.com/team/app:1.2.3", ImageID: "sha256:" + strings.Repeat("a", 64), ContainerID: "containerd://" + strings.Repeat("b", 64)},
				{Name: "sidecar", Ready: true, Image: "registry.example.com/team/sidecar:1.2.3", ImageID: "sha256:" + strings.Repeat("c", 64), ContainerID: "containerd://" + strings.Repeat("d", 64)}}},
	}
}

func TestTrimPodKeepsWhatCurrentReads(t *testing.T) {
	p := typicalPod(1)
	trimmed, err := TrimPod(p)
	if err != nil {
		t.Fatal(err)
	}
	tp := trimmed.(*corev1.Pod)
	arn := "arn:aws:iam::123456789012:role/podidentity/team_app"
	if Current(p, arn) != Current(tp, arn) || !Current(tp, arn) || Current(tp, arn+"x") {
		t.Error("Current differs on the trimmed pod")
	}
	if tp.Spec.ServiceAccountName != "app" || tp.Status.Phase != corev1.PodRunning || len(tp.OwnerReferences) != 1 || tp.Name != p.Name {
		t.Errorf("trimmed too much: %+v", tp)
	}
	if len(tp.ManagedFields) != 0 || len(tp.Labels) != 0 || len(tp.Spec.Containers[0].Env) != 1 || tp.Spec.Containers[0].Image != "" {
		t.Errorf("kept too much: %+v", tp)
	}
	if _, err := TrimPod("tombstone"); err != nil {
		t.Error(err)
	}
}

// retained is the live heap held by n objects made by mk.
func retained(n int, mk func(i int) any) float64 {
	hold := make([]any, n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range hold {
		hold[i] = mk(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(hold)
	return float64(after.HeapAlloc - before.HeapAlloc)
}

// BenchmarkPodCacheMemory measures what 10,000 cached pods hold in memory,
// as the API server sends them and trimmed by TrimPod.
func BenchmarkPodCacheMemory(b *testing.B) {
	const pods = 10000
	for _, tc := range []struct {
		name string
		mk   func(i int) any
	}{
		{"full", func(i int) any { return typicalPod(i) }},
		{"trimmed", func(i int) any { t, _ := TrimPod(typicalPod(i)); return t }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var bytes float64
			for b.Loop() {
				bytes = retained(pods, tc.mk)
			}
			b.ReportMetric(bytes/(1<<20), "MiB/10k-pods")
			b.ReportMetric(bytes/pods, "B/pod")
		})
	}
}

// Issue 17 defect 6: a cached pod keeps one owner reference (the
// controller's) and at most an ARN's length of AWS_ROLE_ARN, however many
// a tenant writes.
func TestTrimPodBoundsTenantInput(t *testing.T) {
	yes := true
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}}
	for i := range 500 {
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: strings.Repeat("n", 200), UID: types.UID(strings.Repeat("u", i%50+1))})
	}
	p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: &yes})
	p.Spec.Containers = []corev1.Container{{Name: "app", Env: []corev1.EnvVar{{Name: EnvRoleARN, Value: strings.Repeat("a", 100_000)}}}}
	out, _ := TrimPod(p)
	tp := out.(*corev1.Pod)
	if len(tp.OwnerReferences) != 1 || tp.OwnerReferences[0].UID != "rs-uid" {
		t.Errorf("owner references: %+v", tp.OwnerReferences)
	}
	if n := len(tp.Spec.Containers[0].Env[0].Value); n != MaxARNLength {
		t.Errorf("AWS_ROLE_ARN kept %d bytes", n)
	}
}
