// Package webhookcert is the self-managed option for the admission webhook's
// serving certificate. At start-up the operator reads the certificate from a
// Secret, or, when there is none or it expires within 30 days, makes a CA and
// a serving certificate for its webhook Service and stores them there (every
// replica then serves the same certificate). It writes them where the webhook
// server reads them and puts the CA into its ValidatingWebhookConfiguration.
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
	// SecretName holds the CA and certificate in Namespace.
	SecretName string
	// Validity of the certificates.
	Validity time.Duration
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

// Ensure makes sure a valid certificate is stored, written to CertDir and
// trusted by the webhook configuration.
func Ensure(ctx context.Context, c client.Client, o Options) error {
	if o.Validity == 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	caPEM, certPEM, keyPEM, err := stored(ctx, c, o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.CertDir, 0o700); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(o.CertDir, "tls.key"), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(o.CertDir, "tls.crt"), certPEM, 0o644); err != nil {
		return err
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: o.WebhookConfigName}, vwc); err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", o.WebhookConfigName, err)
	}
	before := vwc.DeepCopy()
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig.CABundle = caPEM
	}
	if err := c.Patch(ctx, vwc, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("setting the CA bundle of %s: %w", o.WebhookConfigName, err)
	}
	return nil
}

// stored returns the certificate in the Secret, replacing it when it is
// missing, unusable or expires within 30 days. When two replicas race, the
// one whose write loses reads the winner's.
func stored(ctx context.Context, c client.Client, o Options) (caPEM, certPEM, keyPEM []byte, err error) {
	key := client.ObjectKey{Namespace: o.Namespace, Name: o.SecretName}
	for range 3 {
		sec := &corev1.Secret{}
		err := c.Get(ctx, key, sec)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, nil, nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		found := err == nil
		if found && usable(sec.Data, o) {
			return sec.Data["ca.crt"], sec.Data["tls.crt"], sec.Data["tls.key"], nil
		}
		caPEM, certPEM, keyPEM, err := generate(o)
		if err != nil {
			return nil, nil, nil, err
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
			return nil, nil, nil, fmt.Errorf("storing Secret %s: %w", key, err)
		}
		return caPEM, certPEM, keyPEM, nil
	}
	return nil, nil, nil, fmt.Errorf("could not settle the certificate in Secret %s", key)
}

// usable reports whether stored data is a pair for the Service, signed by the
// stored CA and valid for at least 30 more days.
func usable(data map[string][]byte, o Options) bool {
	pair, err := tls.X509KeyPair(data["tls.crt"], data["tls.key"])
	if err != nil {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < 30*24*time.Hour {
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
