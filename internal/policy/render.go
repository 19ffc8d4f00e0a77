package policy

import (
	"fmt"
	"strings"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// DefaultAudience is the token audience IRSA uses.
const DefaultAudience = "sts.amazonaws.com"

// AssumeRoleWithWebIdentity is the only action a binding's trust policy allows.
const AssumeRoleWithWebIdentity = "sts:AssumeRoleWithWebIdentity"

// TrustInput is what a binding's trust policy depends on.
type TrustInput struct {
	// ProviderARN is the ARN of the cluster's IAM OIDC identity provider.
	ProviderARN string
	// Issuer is the provider ID of the issuer (see ProviderID: host and path,
	// no scheme, exactly as in the token's iss claim): the prefix of the
	// condition keys.
	Issuer         string
	Namespace      string
	ServiceAccount string
	// Audience defaults to DefaultAudience.
	Audience string
	// Additional providers (other clusters' issuers) trusted for the same
	// ServiceAccount and audience, one statement each.
	Additional []Provider
}

// Provider is an IAM OIDC identity provider: its ARN and its ID (see
// ProviderID), the prefix of its condition keys.
type Provider struct {
	ARN string
	ID  string
}

// Subject is the `sub` claim of a ServiceAccount token.
func Subject(namespace, serviceAccount string) string {
	return "system:serviceaccount:" + namespace + ":" + serviceAccount
}

// TrustPolicy renders the role's trust policy: one Allow statement for the
// cluster's OIDC provider, restricted with StringEquals to exactly one
// ServiceAccount and one audience, and one more such statement for each
// additional provider.
func TrustPolicy(in TrustInput) Document {
	aud := in.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	d := Document{Version: Version}
	for _, p := range append([]Provider{{ARN: in.ProviderARN, ID: in.Issuer}}, in.Additional...) {
		d.Statement = append(d.Statement, Statement{
			Effect:    "Allow",
			Principal: Principal{"Federated": {p.ARN}},
			Action:    StringList{AssumeRoleWithWebIdentity},
			Condition: Condition{"StringEquals": {
				p.ID + ":sub": {Subject(in.Namespace, in.ServiceAccount)},
				p.ID + ":aud": {aud},
			}},
		})
	}
	return d
}

// PermissionPolicy renders a binding's permission statements as an inline
// policy. It returns false when there is nothing to render.
func PermissionPolicy(stmts []v1alpha1.PermissionStatement) (Document, bool) {
	if len(stmts) == 0 {
		return Document{}, false
	}
	d := Document{Version: Version, Statement: make([]Statement, 0, len(stmts))}
	for _, s := range stmts {
		effect := string(s.Effect)
		if effect == "" {
			effect = string(v1alpha1.EffectAllow)
		}
		st := Statement{
			Sid:      s.Sid,
			Effect:   effect,
			Action:   append(StringList(nil), s.Actions...),
			Resource: append(StringList(nil), s.Resources...),
		}
		if len(s.Conditions) > 0 {
			st.Condition = Condition{}
			for op, keys := range s.Conditions {
				st.Condition[op] = map[string]StringList{}
				for k, v := range keys {
					st.Condition[op][k] = append(StringList(nil), v...)
				}
			}
		}
		d.Statement = append(d.Statement, st)
	}
	return d, true
}

// ProviderID is how IAM identifies the OIDC provider of an issuer, in the
// provider's ARN and in condition keys: the issuer exactly as tokens carry it
// in their iss claim, without its https:// scheme. Nothing else is tidied: an
// issuer https://host/path/ is the provider host/path/, a different provider
// from host/path. IAM accepts only https issuers; an issuer given without a
// scheme is taken as host and path.
func ProviderID(issuer string) (string, error) {
	s := strings.TrimSpace(issuer)
	if i := strings.Index(s, "://"); i >= 0 {
		if !strings.EqualFold(s[:i], "https") {
			return "", fmt.Errorf("issuer %q: IAM OIDC providers need an https issuer", issuer)
		}
		s = s[i+3:]
	}
	if s == "" || strings.HasPrefix(s, "/") {
		return "", fmt.Errorf("issuer %q has no host", issuer)
	}
	return s, nil
}
