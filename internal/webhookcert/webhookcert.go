// Package webhookcert is the self-managed option for the admission webhook's
// serving certificate: at start-up the operator makes a CA and a serving
// certificate for its webhook Service, writes them where the webhook server
// reads them, and puts the CA into its ValidatingWebhookConfiguration. A
// restart rotates both. Clusters with cert-manager use the cert-manager
// overlay instead.
package webhookcert

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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

// Ensure generates the CA and serving certificate, writes them to CertDir
// and sets the CA bundle of every webhook in the configuration.
func Ensure(ctx context.Context, c client.Client, o Options) error {
	if o.Validity == 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	caPEM, certPEM, keyPEM, err := generate(o)
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
