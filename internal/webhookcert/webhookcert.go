// Package webhookcert is the self-managed option for the admission webhook's
// serving certificate. The certificate lives in a Secret shared by every
// replica; each replica keeps the Secret, its own files and the webhook
// configuration's CA bundle in step (Keep). When the certificate is missing,
// unusable or close to expiry, one replica replaces it (the others lose the
// write and read the winner's).
//
// Rotation with several replicas: replicas reload the Secret on their own
// timers, so for a while some serve the new certificate and some the old one.
// The Secret's ca.crt is therefore a bundle: the new CA followed by the
// previous one while it is still valid, and that whole bundle is what the
// webhook configuration trusts. A replica puts the bundle into the webhook
// configuration before it serves a certificate from it, and, after writing
// the bundle, reads the Secret again and repeats when a rotation happened in
// between, so a slow replica cannot leave an older bundle behind.
// Clusters with cert-manager use the cert-manager overlay instead.
package webhookcert

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Options say what to certify and where to put it.
type Options struct {
	// ServiceName and Namespace of the webhook Service.
	ServiceName string
	Namespace   string
	// CertDir receives tls.crt and tls.key.
	CertDir string
	// WebhookConfigName is the ValidatingWebhookConfiguration to update.
	WebhookConfigName string
	// MutatingWebhookConfigName, when set, is a MutatingWebhookConfiguration
	// served by the same certificate (the pod identity webhook).
	MutatingWebhookConfigName string
	// SecretName holds the CA bundle and certificate in Namespace.
	SecretName string
	// Validity of new certificates (default a year).
	Validity time.Duration
	// RenewBefore is how long before expiry a certificate is replaced
	// (default 30 days).
	RenewBefore time.Duration
	// ReloadInterval is how often Keep re-reads the Secret (default a minute).
	ReloadInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Validity == 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = 30 * 24 * time.Hour
	}
	if o.ReloadInterval == 0 {
		o.ReloadInterval = time.Minute
	}
	return o
}

// DNSNames the serving certificate covers.
func (o Options) DNSNames() []string {
	return []string{
		o.ServiceName,
		o.ServiceName + "." + o.Namespace,
		o.ServiceName + "." + o.Namespace + ".svc",
		o.ServiceName + "." + o.Namespace + ".svc.cluster.local",
	}
}

// Keep runs Ensure every ReloadInterval until ctx ends, so every replica
// picks up a certificate another replica renewed (and puts a CA bundle that
// someone reset back). The webhook server's certificate watcher reloads the
// files.
func Keep(ctx context.Context, c client.Client, o Options, log logr.Logger) {
	o = o.withDefaults()
	ticker := time.NewTicker(o.ReloadInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := Ensure(ctx, c, o); err != nil {
				log.Error(err, "keeping the webhook serving certificate")
			}
		}
	}
}

// Ensure makes sure a valid certificate is stored, its CA bundle is trusted
// by the webhook configuration, and the certificate is in CertDir, in that
// order. It writes only what differs.
func Ensure(ctx context.Context, c client.Client, o Options) error {
	o = o.withDefaults()
	for range 5 {
		sec, err := stored(ctx, c, o)
		if err != nil {
			return err
		}
		wrote, err := trust(ctx, c, o, sec.Data["ca.crt"])
		if err != nil {
			return err
		}
		// Another replica may have rotated the certificate while this one
		// wrote an older bundle: then go round again with the newer Secret.
		// (Without a write there is nothing to undo.)
		if wrote {
			again := &corev1.Secret{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(sec), again); err != nil {
				return fmt.Errorf("reading Secret %s: %w", o.SecretName, err)
			}
			if again.ResourceVersion != sec.ResourceVersion {
				continue
			}
		}
		return serve(o, sec.Data["tls.crt"], sec.Data["tls.key"])
	}
	return fmt.Errorf("the certificate in Secret %s/%s kept changing", o.Namespace, o.SecretName)
}

// trust sets every webhook's CA bundle to bundle, in the validating and (when
// named) the mutating configuration, and reports whether it wrote.
func trust(ctx context.Context, c client.Client, o Options, bundle []byte) (bool, error) {
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	wrote, err := patchBundle(ctx, c, o.WebhookConfigName, vwc, bundle, func() (ccs []*admissionregistrationv1.WebhookClientConfig) {
		for i := range vwc.Webhooks {
			ccs = append(ccs, &vwc.Webhooks[i].ClientConfig)
		}
		return ccs
	})
	if err != nil || o.MutatingWebhookConfigName == "" {
		return wrote, err
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	wroteMutating, err := patchBundle(ctx, c, o.MutatingWebhookConfigName, mwc, bundle, func() (ccs []*admissionregistrationv1.WebhookClientConfig) {
		for i := range mwc.Webhooks {
			ccs = append(ccs, &mwc.Webhooks[i].ClientConfig)
		}
		return ccs
	})
	return wrote || wroteMutating, err
}

// patchBundle reads the named webhook configuration into obj and patches the
// client configs (listed by configs, after the read) that lack bundle. It
// reports whether it patched.
func patchBundle(ctx context.Context, c client.Client, name string, obj client.Object, bundle []byte,
	configs func() []*admissionregistrationv1.WebhookClientConfig) (bool, error) {
	kind := fmt.Sprintf("%T", obj)[len("*v1."):]
	if err := c.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
		return false, fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	before := obj.DeepCopyObject().(client.Object)
	changed := false
	for _, cc := range configs() {
		if !bytes.Equal(cc.CABundle, bundle) {
			cc.CABundle, changed = bundle, true
		}
	}
	if !changed {
		return false, nil
	}
	if err := c.Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		return false, fmt.Errorf("setting the CA bundle of %s %s: %w", kind, name, err)
	}
	return true, nil
}

// serve writes the pair to CertDir unless it is there already.
func serve(o Options, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(o.CertDir, 0o700); err != nil {
		return err
	}
	crt, key := filepath.Join(o.CertDir, "tls.crt"), filepath.Join(o.CertDir, "tls.key")
	if same(crt, certPEM) && same(key, keyPEM) {
		return nil
	}
	// The key first: the watcher reloads on either file and tolerates a
	// mismatched pair until both are written.
	if err := writeFile(key, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFile(crt, certPEM, 0o644)
}

func same(path string, data []byte) bool {
	got, err := os.ReadFile(path)
	return err == nil && bytes.Equal(got, data)
}

// stored returns the Secret, replacing its certificate when it is missing,
// unusable or expires within RenewBefore. A replacement keeps the previous CA
// in the bundle while it is valid. When two replicas race, the one whose
// write loses reads the winner's.
func stored(ctx context.Context, c client.Client, o Options) (*corev1.Secret, error) {
	key := client.ObjectKey{Namespace: o.Namespace, Name: o.SecretName}
	for range 3 {
		sec := &corev1.Secret{}
		err := c.Get(ctx, key, sec)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		found := err == nil
		if found && usable(sec.Data, o) {
			return sec, nil
		}
		caPEM, certPEM, keyPEM, err := generate(o)
		if err != nil {
			return nil, err
		}
		if found {
			caPEM = append(caPEM, previousCA(sec.Data["ca.crt"])...)
		}
		sec.Name, sec.Namespace, sec.Type = o.SecretName, o.Namespace, corev1.SecretTypeTLS
		sec.Data = map[string][]byte{"ca.crt": caPEM, "tls.crt": certPEM, "tls.key": keyPEM}
		if found {
			err = c.Update(ctx, sec)
		} else {
			err = c.Create(ctx, sec)
		}
		if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
			continue // another replica stored one first: use it
		}
		if err != nil {
			return nil, fmt.Errorf("storing Secret %s: %w", key, err)
		}
		return sec, nil
	}
	return nil, fmt.Errorf("could not settle the certificate in Secret %s", key)
}

// previousCA is the first CA of a bundle, when it is still valid: the one
// that signed the certificate being replaced. Older ones are dropped.
func previousCA(bundle []byte) []byte {
	block, _ := pem.Decode(bundle)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA || time.Now().After(ca.NotAfter) {
		return nil
	}
	return pemBlock("CERTIFICATE", block.Bytes)
}

// usable reports whether stored data is a pair for the Service, signed by a
// CA in the stored bundle and valid for at least RenewBefore.
func usable(data map[string][]byte, o Options) bool {
	pair, err := tls.X509KeyPair(data["tls.crt"], data["tls.key"])
	if err != nil {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < o.RenewBefore {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data["ca.crt"]) {
		return false
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: o.DNSNames()[2]})
	return err == nil
}

func generate(o Options) (caPEM, certPEM, keyPEM []byte, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "podidentity-operator webhook CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(o.Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: o.DNSNames()[2]},
		DNSNames:     o.DNSNames(),
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(o.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pemBlock("CERTIFICATE", caDER), pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", keyDER), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func pemBlock(kind string, der []byte) []byte {
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: kind, Bytes: der})
	return b.Bytes()
}

// writeFile replaces a file atomically, so the webhook server's certificate
// watcher never reads half a file.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
