package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// APIProxy is a TLS reverse proxy, serving HTTP/2 as an API server does, in
// front of an API server. It records which client connection carried each
// request, and passes requests on as they came (the client's own
// credentials authorize them): what a test needs to see how a client
// spreads its requests over connections.
type APIProxy struct {
	// URL and CAData are what a kubeconfig names to reach the API server
	// through the proxy.
	URL    string
	CAData []byte

	srv      *httptest.Server
	mu       sync.Mutex
	requests []APIRequest
}

// APIRequest is one request the proxy passed on.
type APIRequest struct {
	// Conn is the client's end of the connection (its address).
	Conn   string
	Method string
	Path   string
	// Watch: a watch (or a list streamed as one).
	Watch bool
}

// IsWrite reports whether the request changes something.
func (r APIRequest) IsWrite() bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead
}

// StartAPIProxy starts a proxy in front of the API server of upstream (its
// host and CA; its credentials are not used).
func StartAPIProxy(upstream *rest.Config) (*APIProxy, error) {
	target, err := url.Parse(upstream.Host)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(upstream.CAData) {
		return nil, errors.New("the upstream configuration has no CA data")
	}
	p := &APIProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	rp.FlushInterval = -1 // watch events pass at once
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p.mu.Lock()
		p.requests = append(p.requests, APIRequest{Conn: r.RemoteAddr, Method: r.Method, Path: r.URL.Path,
			Watch: q.Get("watch") == "true" || q.Get("watch") == "1" || strings.Contains(r.URL.Path, "/watch/")})
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	p.srv.EnableHTTP2 = true
	p.srv.StartTLS()
	p.URL = p.srv.URL
	p.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	return p, nil
}

// Requests are the requests passed on so far, in order of arrival.
func (p *APIProxy) Requests() []APIRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

// Close stops the proxy and closes its connections.
func (p *APIProxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
}
