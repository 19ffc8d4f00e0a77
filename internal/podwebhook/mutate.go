// Package podwebhook decides how a Pod is changed so that the AWS SDK in its
// containers finds web-identity credentials: the same projected token,
// mount path, environment and annotations as AWS's pod identity webhook on
// EKS, so that workloads move between clusters unchanged. Mutate is pure;
// the admission handler in controllers gathers the ServiceAccount and calls it.
package podwebhook

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/podidentity/podidentity-operator/internal/vocab"
)

// Annotations honoured, on the ServiceAccount (SA) or the Pod (the
// operator sets the SA ones: internal/vocab).
const (
	// AnnotationRoleARN (SA): the role the pod's SDK assumes. Pods of a
	// ServiceAccount without it are not changed.
	AnnotationRoleARN = vocab.AnnotationRoleARN
	// AnnotationAudience (SA): the token audience (default sts.amazonaws.com).
	AnnotationAudience = vocab.AnnotationAudience
	// AnnotationSTSRegionalEndpoints (SA): "true" sets
	// AWS_STS_REGIONAL_ENDPOINTS=regional, "false" sets it to legacy.
	AnnotationSTSRegionalEndpoints = vocab.AnnotationSTSRegionalEndpoints
	// AnnotationTokenExpiration (SA or Pod, the Pod's wins): the projected
	// token's lifetime in seconds, 600 to 86400 (default 86400).
	AnnotationTokenExpiration = vocab.AnnotationTokenExpiration
	// AnnotationSkipContainers (Pod): comma-separated names of containers
	// (or init containers) that get nothing.
	AnnotationSkipContainers = "eks.amazonaws.com/skip-containers"
)

// What is injected.
const (
	VolumeName        = "aws-iam-token"
	MountPath         = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
	TokenFile         = MountPath + "/token"
	DefaultAudience   = "sts.amazonaws.com"
	DefaultExpiration = int64(86400)
	MinExpiration     = int64(600)

	EnvRoleARN             = "AWS_ROLE_ARN"
	EnvTokenFile           = "AWS_WEB_IDENTITY_TOKEN_FILE"
	EnvSTSRegionalEndpoint = "AWS_STS_REGIONAL_ENDPOINTS"
	EnvRegion              = "AWS_REGION"
	EnvDefaultRegion       = "AWS_DEFAULT_REGION"
)

// Config is the operator-wide part of the mutation.
type Config struct {
	// Region, when set, is written as AWS_REGION and AWS_DEFAULT_REGION.
	Region string
}

// Result says what Mutate did and why.
type Result struct {
	Mutated bool
	// Reason is a short explanation when nothing was injected.
	Reason string
}

// Mutate injects the token volume, mounts and environment into pod when its
// ServiceAccount sa carries a role annotation. It never injects twice: a pod
// that already has the token volume (from this webhook or AWS's) is left
// alone, and so is every container that already sets AWS_ROLE_ARN or
// AWS_WEB_IDENTITY_TOKEN_FILE. Variables a container already sets keep their
// value.
func Mutate(pod *corev1.Pod, sa *corev1.ServiceAccount, cfg Config) Result {
	if sa == nil || sa.Annotations[AnnotationRoleARN] == "" {
		return Result{Reason: "the ServiceAccount has no " + AnnotationRoleARN + " annotation"}
	}
	if slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == VolumeName }) {
		return Result{Reason: "the pod already has the " + VolumeName + " volume"}
	}
	skip := map[string]bool{}
	for _, n := range strings.Split(pod.Annotations[AnnotationSkipContainers], ",") {
		if n = strings.TrimSpace(n); n != "" {
			skip[n] = true
		}
	}
	env := desiredEnv(sa, cfg)
	mutated := false
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := &list[i]
			if skip[c.Name] || setsCredentials(c) {
				continue
			}
			for _, e := range env {
				if !slices.ContainsFunc(c.Env, func(x corev1.EnvVar) bool { return x.Name == e.Name }) {
					c.Env = append(c.Env, e)
				}
			}
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == MountPath }) {
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: VolumeName, MountPath: MountPath, ReadOnly: true})
			}
			mutated = true
		}
	}
	if !mutated {
		return Result{Reason: "every container is skipped or already sets its credentials"}
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: VolumeName, VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr.To[int32](0o444),
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: Audience(sa), ExpirationSeconds: ptr.To(Expiration(pod, sa)), Path: "token",
			}}},
		},
	}})
	return Result{Mutated: true}
}

// Audience is the token audience for pods of sa.
func Audience(sa *corev1.ServiceAccount) string {
	if a := strings.TrimSpace(sa.Annotations[AnnotationAudience]); a != "" {
		return a
	}
	return DefaultAudience
}

// Expiration is the token lifetime: the pod's annotation, else the
// ServiceAccount's, else a day; values outside 600..86400 are clamped and
// unparsable ones ignored.
func Expiration(pod *corev1.Pod, sa *corev1.ServiceAccount) int64 {
	for _, v := range []string{pod.Annotations[AnnotationTokenExpiration], sa.Annotations[AnnotationTokenExpiration]} {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		return min(max(n, MinExpiration), DefaultExpiration)
	}
	return DefaultExpiration
}

func desiredEnv(sa *corev1.ServiceAccount, cfg Config) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: EnvRoleARN, Value: sa.Annotations[AnnotationRoleARN]},
		{Name: EnvTokenFile, Value: TokenFile},
	}
	switch strings.ToLower(strings.TrimSpace(sa.Annotations[AnnotationSTSRegionalEndpoints])) {
	case "true":
		env = append(env, corev1.EnvVar{Name: EnvSTSRegionalEndpoint, Value: "regional"})
	case "false":
		env = append(env, corev1.EnvVar{Name: EnvSTSRegionalEndpoint, Value: "legacy"})
	}
	if cfg.Region != "" {
		env = append(env, corev1.EnvVar{Name: EnvRegion, Value: cfg.Region}, corev1.EnvVar{Name: EnvDefaultRegion, Value: cfg.Region})
	}
	return env
}

// setsCredentials reports whether the container chose its own web identity.
func setsCredentials(c *corev1.Container) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == EnvRoleARN || e.Name == EnvTokenFile })
}

// Current reports whether pod runs with the credentials of roleARN: it has
// the token volume, at least one container has AWS_ROLE_ARN, and every
// AWS_ROLE_ARN in it is roleARN. A pod started before its ServiceAccount was
// annotated, or before the role changed, is not current.
func Current(pod *corev1.Pod, roleARN string) bool {
	if !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == VolumeName }) {
		return false
	}
	found := false
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			for _, e := range c.Env {
				if e.Name == EnvRoleARN {
					if e.Value != roleARN {
						return false
					}
					found = true
				}
			}
		}
	}
	return found
}
