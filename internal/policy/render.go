package policy

import (
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
	// Issuer is the normalised issuer (host and path, no scheme, no trailing
	// slash): the prefix of the condition keys.
	Issuer         string
	Namespace      string
	ServiceAccount string
	// Audience defaults to DefaultAudience.
	Audience string
}

// Subject is the `sub` claim of a ServiceAccount token.
func Subject(namespace, serviceAccount string) string {
	return "system:serviceaccount:" + namespace + ":" + serviceAccount
}

// TrustPolicy renders the role's trust policy: one Allow statement for the
// cluster's OIDC provider, restricted with StringEquals to exactly one
// ServiceAccount and one audience.
func TrustPolicy(in TrustInput) Document {
	aud := in.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	return Document{
		Version: Version,
		Statement: []Statement{{
			Effect:    "Allow",
			Principal: Principal{"Federated": {in.ProviderARN}},
			Action:    StringList{AssumeRoleWithWebIdentity},
			Condition: Condition{"StringEquals": {
				in.Issuer + ":sub": {Subject(in.Namespace, in.ServiceAccount)},
				in.Issuer + ":aud": {aud},
			}},
		}},
	}
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

// NormaliseIssuer turns an issuer URL into the form IAM uses in condition keys
// and provider ARNs: no scheme, no trailing slash.
func NormaliseIssuer(issuer string) string {
	s := strings.TrimSpace(issuer)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	return strings.TrimRight(s, "/")
}
