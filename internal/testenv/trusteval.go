package testenv

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// TrustRequest is one assume-role request as STS evaluates it against a
// role's trust policy: who asks, for which actions (sts:AssumeRole and, with
// session tags, sts:TagSession), and the request's condition context.
type TrustRequest struct {
	// Principal is {"Service": "pods.eks.amazonaws.com"} or
	// {"Federated": "<provider ARN>"}.
	PrincipalType, Principal string
	Actions                  []string
	// Context maps condition keys (aws:SourceAccount,
	// aws:RequestTag/kubernetes-namespace, <issuer>:sub, ...) to values.
	Context map[string]string
}

// TrustAllows evaluates a trust policy (as IAM returns it: URL-encoded JSON)
// for the request, the way STS does for the subset the operator writes:
// an explicit Deny wins, every requested action needs an Allow whose
// principal, action and conditions all match. Condition operators it does not
// know never match (fail closed); condition keys compare case-insensitively,
// values case-sensitively, and a key missing from the context does not match.
func TrustAllows(encoded string, req TrustRequest) (bool, error) {
	raw, err := url.QueryUnescape(encoded)
	if err != nil {
		raw = encoded
	}
	var doc struct {
		Statement []struct {
			Effect    string
			Principal map[string]any
			Action    any
			Condition map[string]map[string]any
		}
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return false, fmt.Errorf("trust policy: %w", err)
	}
	allowed := map[string]bool{}
	for _, st := range doc.Statement {
		if !containsFold(StringOrList(st.Principal[req.PrincipalType]), req.Principal) || !conditionsMatch(st.Condition, req.Context) {
			continue
		}
		for _, a := range req.Actions {
			if !actionMatches(StringOrList(st.Action), a) {
				continue
			}
			if st.Effect == "Deny" {
				return false, nil
			}
			if st.Effect == "Allow" {
				allowed[a] = true
			}
		}
	}
	for _, a := range req.Actions {
		if !allowed[a] {
			return false, nil
		}
	}
	return len(req.Actions) > 0, nil
}

func containsFold(list []string, v string) bool {
	for _, s := range list {
		if s == v || s == "*" {
			return true
		}
	}
	return false
}

func actionMatches(patterns []string, action string) bool {
	for _, p := range patterns {
		if glob(strings.ToLower(p), strings.ToLower(action)) {
			return true
		}
	}
	return false
}

func conditionsMatch(conds map[string]map[string]any, ctx map[string]string) bool {
	lookup := func(key string) (string, bool) {
		for k, v := range ctx {
			if strings.EqualFold(k, key) {
				return v, true
			}
		}
		return "", false
	}
	for op, keys := range conds {
		for key, want := range keys {
			got, ok := lookup(key)
			if !ok {
				return false
			}
			match := false
			for _, w := range StringOrList(want) {
				switch op {
				case "StringEquals":
					match = match || got == w
				case "StringLike", "ArnLike", "ArnEquals":
					match = match || glob(w, got)
				}
			}
			if !match {
				return false
			}
		}
	}
	return true
}

// glob matches IAM's wildcards: * any run of characters (slashes too), ?
// one character.
func glob(pattern, s string) bool {
	var re strings.Builder
	re.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(s)
}
