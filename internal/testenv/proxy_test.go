package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The proxy attributes each request to the account of its credentials: an
// access key from an sts:AssumeRole answer acts in the assumed role's
// account, any other key in the caller's own ("").
func TestProxyCountsByCredentialAccount(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Form.Get("Action") == "AssumeRole" {
			account := strings.Split(r.Form.Get("RoleArn"), ":")[4]
			_, _ = fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIA%s</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken></Credentials>
<AssumedRoleUser><AssumedRoleId>AROA:x</AssumedRoleId><Arn>arn:aws:sts::%s:assumed-role/op/x</Arn></AssumedRoleUser>
</AssumeRoleResult></AssumeRoleResponse>`, account, account)
			return
		}
		_, _ = fmt.Fprint(w, "<ok/>")
	}))
	defer target.Close()
	p, err := StartProxy(target.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	call := func(key string, form url.Values) string {
		req, _ := http.NewRequest(http.MethodPost, p.URL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/20261205/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return b.String()
	}
	body := call("AKIAHOME", url.Values{"Action": {"AssumeRole"}, "RoleArn": {"arn:aws:iam::222222222222:role/op"}})
	if !strings.Contains(body, "ASIA222222222222") {
		t.Fatalf("the AssumeRole answer was not passed on: %s", body)
	}
	call("ASIA222222222222", url.Values{"Action": {"CreateRole"}, "RoleName": {"b-role"}})
	call("AKIAHOME", url.Values{"Action": {"CreateRole"}, "RoleName": {"home-role"}})
	call("AKIAHOME", url.Values{"Action": {"GetRole"}, "RoleName": {"home-role"}})
	if got := p.CallsIn("222222222222", "CreateRole", "b-role"); got != 1 {
		t.Errorf("CreateRole b-role in 222222222222 = %d, want 1", got)
	}
	if got := p.CallsIn("", "", ""); got != 3 {
		t.Errorf("requests with the caller's own credentials = %d, want 3 (AssumeRole, CreateRole, GetRole)", got)
	}
	if got := p.RolesNamedIn("222222222222"); len(got) != 1 || got["b-role"] != 1 {
		t.Errorf("roles named with 222222222222's credentials = %v", got)
	}
	if got := p.RolesNamedIn(""); got["home-role"] != 2 || got["b-role"] != 0 {
		t.Errorf("roles named with the caller's credentials = %v", got)
	}
}
