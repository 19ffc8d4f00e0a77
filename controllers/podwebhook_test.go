package controllers_test

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

const tokenDir = "/var/run/secrets/eks.amazonaws.com/serviceaccount"

// createPod creates a pod through the API server (so every admission webhook
// runs) and returns what the API server stored.
func createPod(ns, name, sa string, annotations map[string]string, containers ...corev1.Container) *corev1.Pod {
	if len(containers) == 0 {
		containers = []corev1.Container{{Name: "app", Image: "app:1"}}
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: containers}}
	ExpectWithOffset(1, k8s.Create(ctx, p)).To(Succeed())
	return p
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

// tokenVolume is the projected token source of the pod's aws-iam-token volume.
func tokenVolume(p *corev1.Pod) *corev1.ServiceAccountTokenProjection {
	for _, v := range p.Spec.Volumes {
		if v.Name == "aws-iam-token" && v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					return s.ServiceAccountToken
				}
			}
		}
	}
	return nil
}

func hasTokenMount(c corev1.Container) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == "aws-iam-token" && m.MountPath == tokenDir && m.ReadOnly {
			return true
		}
	}
	return false
}

var _ = Describe("Built-in pod identity webhook", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("injects the projected token and environment into every container and init container, and the chain works end to end", func() {
		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		b := waitReady(ns, "app")

		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Spec: corev1.PodSpec{ServiceAccountName: "app",
			InitContainers: []corev1.Container{{Name: "migrate", Image: "app:1"}},
			Containers:     []corev1.Container{{Name: "app", Image: "app:1"}, {Name: "metrics", Image: "metrics:1"}}}}
		Expect(k8s.Create(ctx, p)).To(Succeed())

		src := tokenVolume(p)
		Expect(src).NotTo(BeNil())
		Expect(src.Audience).To(Equal("sts.amazonaws.com"))
		Expect(src.ExpirationSeconds).To(Equal(ptr.To[int64](86400)))
		Expect(src.Path).To(Equal("token"))
		for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			Expect(envOf(c)).To(Equal(map[string]string{
				"AWS_ROLE_ARN":                b.Status.RoleArn,
				"AWS_WEB_IDENTITY_TOKEN_FILE": tokenDir + "/token",
				"AWS_REGION":                  podWebhookRegion,
				"AWS_DEFAULT_REGION":          podWebhookRegion,
			}), c.Name)
			Expect(hasTokenMount(c)).To(BeTrue(), c.Name)
		}

		By("the kubelet's TokenRequest for that volume: exactly its audience and lifetime")
		token, claims := requestToken(ns, p.Spec.ServiceAccountName, []string{src.Audience}, src.ExpirationSeconds)
		Expect(claims.Aud).To(Equal([]string{"sts.amazonaws.com"}))
		Expect(claims.Sub).To(Equal("system:serviceaccount:" + ns + ":app"))
		Expect(claims.Iss).To(Equal(issuerURL))
		Expect(claims.Exp - claims.Iat).To(BeNumerically("~", 86400, 60))

		By("STS exchanges it for the role named in the pod's AWS_ROLE_ARN")
		out, err := stsc.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
			RoleArn: aws.String(envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"]), RoleSessionName: aws.String("pod"), WebIdentityToken: aws.String(token)})
		Expect(err).NotTo(HaveOccurred())
		Expect(aws.ToString(out.AssumedRoleUser.Arn)).To(ContainSubstring(b.Status.RoleName))
		deleteBinding(ns, "app")
	})

	It("honours the ServiceAccount's and the pod's annotations, as AWS's webhook does", func() {
		b := newBinding(ns, "tuned", "tuned")
		b.Spec.ServiceAccountToken = &v1alpha1.ServiceAccountTokenSettings{STSRegionalEndpoints: ptr.To(true), ExpirationSeconds: ptr.To[int64](3600)}
		Expect(k8s.Create(ctx, b)).To(Succeed())
		b = waitReady(ns, "tuned")

		p := createPod(ns, "sa-settings", "tuned", nil)
		Expect(tokenVolume(p).ExpirationSeconds).To(Equal(ptr.To[int64](3600)))
		Expect(envOf(p.Spec.Containers[0])).To(HaveKeyWithValue("AWS_STS_REGIONAL_ENDPOINTS", "regional"))

		By("the pod's token-expiration wins; skip-containers are left alone")
		p = createPod(ns, "pod-settings", "tuned", map[string]string{
			"eks.amazonaws.com/token-expiration": "7200", "eks.amazonaws.com/skip-containers": "proxy"},
			corev1.Container{Name: "app", Image: "app:1"}, corev1.Container{Name: "proxy", Image: "proxy:1"})
		Expect(tokenVolume(p).ExpirationSeconds).To(Equal(ptr.To[int64](7200)))
		Expect(envOf(p.Spec.Containers[0])).To(HaveKeyWithValue("AWS_ROLE_ARN", b.Status.RoleArn))
		Expect(p.Spec.Containers[1].Env).To(BeEmpty())
		Expect(p.Spec.Containers[1].VolumeMounts).To(BeEmpty())

		By("a container that sets its own credentials keeps them; other variables it sets keep their values")
		p = createPod(ns, "own", "tuned", nil,
			corev1.Container{Name: "own", Image: "app:1", Env: []corev1.EnvVar{{Name: "AWS_ROLE_ARN", Value: "arn:aws:iam::123456789012:role/mine"}}},
			corev1.Container{Name: "regional", Image: "app:1", Env: []corev1.EnvVar{{Name: "AWS_REGION", Value: "ap-south-1"}}})
		Expect(envOf(p.Spec.Containers[0])).To(Equal(map[string]string{"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/mine"}))
		Expect(p.Spec.Containers[0].VolumeMounts).To(BeEmpty())
		Expect(envOf(p.Spec.Containers[1])).To(HaveKeyWithValue("AWS_REGION", "ap-south-1"))
		Expect(envOf(p.Spec.Containers[1])).To(HaveKeyWithValue("AWS_DEFAULT_REGION", podWebhookRegion))
		deleteBinding(ns, "tuned")
	})

	It("leaves alone pods without a role, pods already injected, and namespaces that opt out", func() {
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"}})).To(Succeed())
		p := createPod(ns, "plain", "plain", nil)
		Expect(p.Spec.Volumes).NotTo(ContainElement(HaveField("Name", "aws-iam-token")))
		Expect(p.Spec.Containers[0].Env).To(BeEmpty())

		Expect(k8s.Create(ctx, newBinding(ns, "app", "app"))).To(Succeed())
		waitReady(ns, "app")

		By("a pod AWS's webhook (or an earlier admission) already injected is not injected twice")
		pre := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pre"}, Spec: corev1.PodSpec{ServiceAccountName: "app",
			Containers: []corev1.Container{{Name: "app", Image: "app:1", Env: []corev1.EnvVar{{Name: "AWS_REGION", Value: "us-west-2"}}}},
			Volumes: []corev1.Volume{{Name: "aws-iam-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "sts.amazonaws.com", Path: "token"}}}}}}}}}
		Expect(k8s.Create(ctx, pre)).To(Succeed())
		tokens := 0
		for _, v := range pre.Spec.Volumes {
			if v.Name == "aws-iam-token" {
				tokens++
			}
		}
		Expect(tokens).To(Equal(1))
		Expect(pre.Spec.Containers[0].VolumeMounts).NotTo(ContainElement(HaveField("MountPath", tokenDir)))
		Expect(envOf(pre.Spec.Containers[0])).To(Equal(map[string]string{"AWS_REGION": "us-west-2"}))

		By("a namespace labelled podidentity.io/pod-identity-webhook=disabled")
		off := newNamespaceWithLabels(map[string]string{"podidentity.io/pod-identity-webhook": "disabled"})
		Expect(k8s.Create(ctx, newBinding(off, "app", "app"))).To(Succeed())
		waitReady(off, "app")
		p = createPod(off, "app", "app", nil)
		Expect(p.Spec.Containers[0].Env).To(BeEmpty())
		deleteBinding(off, "app")

		By("namespaces the configuration never sends (kube-system, the operator's), and one excluded by --pod-identity-webhook-excluded-namespaces")
		for _, other := range []string{"kube-system", "podidentity-system", flagExcludedNamespace} {
			_ = k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}})
			sys := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "annotated-" + ns,
				Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/x"}}}
			Expect(k8s.Create(ctx, sys)).To(Succeed())
			// Restricted, as the operator's namespace may enforce it.
			p = createPod(other, "annotated-"+ns, sys.Name, nil, corev1.Container{Name: "app", Image: "app:1",
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), RunAsNonRoot: ptr.To(true),
					Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}})
			Expect(p.Spec.Containers[0].Env).To(BeEmpty(), other)
			Expect(p.Spec.Volumes).NotTo(ContainElement(HaveField("Name", "aws-iam-token")), other)
			Expect(k8s.Delete(ctx, p)).To(Succeed())
			Expect(k8s.Delete(ctx, sys)).To(Succeed())
		}
		deleteBinding(ns, "app")
	})
})
