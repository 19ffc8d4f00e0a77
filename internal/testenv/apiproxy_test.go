package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/client-go/rest"
)

// The API proxy passes requests on with the client's own credentials, and
// records the client connection of each: one HTTP/2 connection carries
// both requests of one client.
func TestAPIProxyRecordsConnections(t *testing.T) {
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("Authorization")+" "+r.URL.RequestURI())
	}))
	upstream.EnableHTTP2 = true
	upstream.StartTLS()
	defer upstream.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upstream.Certificate().Raw})
	p, err := StartAPIProxy(&rest.Config{Host: upstream.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAData)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}}
	for _, path := range []string{"/api/v1/pods?watch=true", "/api/v1/namespaces/a/pods/b"} {
		req, _ := http.NewRequest(http.MethodGet, p.URL+path, nil)
		req.Header.Set("Authorization", "Bearer sa-token")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if want := "Bearer sa-token " + path; string(body) != want || resp.ProtoMajor != 2 {
			t.Errorf("%s: HTTP/%d %q, want HTTP/2 %q", path, resp.ProtoMajor, body, want)
		}
	}
	got := p.Requests()
	if len(got) != 2 || !got[0].Watch || got[1].Watch || got[0].Path != "/api/v1/pods" || got[0].Conn != got[1].Conn || got[0].Conn == "" {
		t.Errorf("recorded %+v; want the watch and the get, on one connection", got)
	}
	if got[0].IsWrite() {
		t.Error("a GET counted as a write")
	}
}
