package podwebhook

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// TrimPod keeps only what the operator reads of a Pod (Current, the
// ServiceAccount index and the owner walk), so a pod cache costs little
// memory however large the cluster's pod specs are: name, namespace, UID,
// the controller owner, deletion timestamp, ServiceAccount, the token volume's name, each
// container's name and AWS_ROLE_ARN, and the phase. Use it as the cache's
// transform for Pods.
func TrimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a deletion tombstone: keep as is
	}
	t := &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			DeletionTimestamp: p.DeletionTimestamp},
		Spec:   corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}
	// Of owner references only the controller's: the owner walk follows
	// nothing else, and a pod may carry any number of them.
	if ref := metav1.GetControllerOf(p); ref != nil {
		t.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	for _, v := range p.Spec.Volumes {
		if v.Name == VolumeName || v.Name == PodIdentityVolumeName {
			t.Spec.Volumes = append(t.Spec.Volumes, corev1.Volume{Name: v.Name})
		}
	}
	t.Spec.InitContainers, t.Spec.Containers = trimContainers(p.Spec.InitContainers), trimContainers(p.Spec.Containers)
	return t, nil
}

// What EKS's own pod identity webhook injects (EKS Pod Identity), kept by
// TrimPod so the pods controller can tell such pods apart.
const (
	PodIdentityVolumeName = "eks-pod-identity-token"
	EnvCredentialsFullURI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
)

// MaxARNLength is the longest ARN IAM issues for a role.
const MaxARNLength = 2048

func trimContainers(cs []corev1.Container) []corev1.Container {
	var out []corev1.Container
	for _, c := range cs {
		tc := corev1.Container{Name: c.Name}
		for _, e := range c.Env {
			if e.Name == EnvCredentialsFullURI {
				// EKS Pod Identity: whether it is there is all that counts.
				tc.Env = append(tc.Env, corev1.EnvVar{Name: e.Name})
			}
			if e.Name == EnvRoleARN {
				// An ARN is at most 2,048 characters; a longer value is
				// never the role's, and is kept only as long as that.
				v := e.Value
				if len(v) > MaxARNLength {
					v = strings.Clone(v[:MaxARNLength])
				}
				tc.Env = append(tc.Env, corev1.EnvVar{Name: e.Name, Value: v})
			}
		}
		out = append(out, tc)
	}
	return out
}

var _ cache.TransformFunc = TrimPod
