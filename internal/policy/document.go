// Package policy renders the IAM documents the operator writes and compares
// documents by meaning, the way IAM evaluates them.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Version is the policy language version the operator writes.
const Version = "2012-10-17"

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version,omitempty"`
	ID        string      `json:"Id,omitempty"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a policy document.
type Statement struct {
	Sid          string     `json:"Sid,omitempty"`
	Effect       string     `json:"Effect"`
	Principal    Principal  `json:"Principal,omitempty"`
	NotPrincipal Principal  `json:"NotPrincipal,omitempty"`
	Action       StringList `json:"Action,omitempty"`
	NotAction    StringList `json:"NotAction,omitempty"`
	Resource     StringList `json:"Resource,omitempty"`
	NotResource  StringList `json:"NotResource,omitempty"`
	Condition    Condition  `json:"Condition,omitempty"`
}

// StringList is a JSON value that IAM accepts as a string or a list of strings.
type StringList []string

// UnmarshalJSON accepts a string, a list of strings, and scalars IAM accepts
// in condition values (booleans and numbers).
func (l *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		out := make(StringList, 0, len(raw))
		for _, r := range raw {
			s, err := scalar(r)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		*l = out
		return nil
	}
	s, err := scalar(b)
	if err != nil {
		return err
	}
	*l = StringList{s}
	return nil
}

func scalar(b []byte) (string, error) {
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	case string(b) == "true" || string(b) == "false":
		return string(b), nil
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return "", err
		}
		return n.String(), nil
	default:
		return "", fmt.Errorf("expected a string, got %s", string(b))
	}
}

// Principal maps a principal type (AWS, Federated, Service, ...) to its values.
// The JSON string "*" is represented as {"*": ["*"]}.
type Principal map[string]StringList

// UnmarshalJSON accepts "*" or an object of string lists.
func (p *Principal) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s != "*" {
			return fmt.Errorf("principal must be \"*\" or an object, got %q", s)
		}
		*p = Principal{"*": {"*"}}
		return nil
	}
	m := map[string]StringList{}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*p = m
	return nil
}

// MarshalJSON writes {"*": ["*"]} back as "*".
func (p Principal) MarshalJSON() ([]byte, error) {
	if len(p) == 1 {
		if v, ok := p["*"]; ok && len(v) == 1 && v[0] == "*" {
			return []byte(`"*"`), nil
		}
	}
	return json.Marshal(map[string]StringList(p))
}

// Condition is operator -> condition key -> values.
type Condition map[string]map[string]StringList

// Parse reads a policy document as IAM returns it: URL-encoded (RFC 3986) or
// plain JSON. Errors are returned, never ignored.
func Parse(raw string) (Document, error) {
	text := strings.TrimSpace(raw)
	if !strings.HasPrefix(text, "{") {
		decoded, err := url.PathUnescape(text)
		if err != nil {
			return Document{}, fmt.Errorf("decoding policy document: %w", err)
		}
		text = decoded
	}
	var d Document
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Document{}, fmt.Errorf("parsing policy document: %w", err)
	}
	return d, nil
}

// JSON renders the document as compact JSON, the form sent to IAM.
func (d Document) JSON() (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// Canonical returns the document in a normal form: default version filled in,
// action names lower-cased (IAM compares them case-insensitively), every list
// sorted and de-duplicated, and statements sorted. Two documents IAM evaluates
// the same way (up to these rules) have equal canonical forms.
func (d Document) Canonical() Document {
	out := Document{Version: d.Version, ID: d.ID, Statement: make([]Statement, 0, len(d.Statement))}
	if out.Version == "" {
		out.Version = "2008-10-17"
	}
	for _, s := range d.Statement {
		out.Statement = append(out.Statement, s.canonical())
	}
	keys := make([]string, len(out.Statement))
	for i, s := range out.Statement {
		b, _ := json.Marshal(s) // cannot fail: plain strings, maps and slices
		keys[i] = string(b)
	}
	sort.Sort(byKey{out.Statement, keys})
	return out
}

type byKey struct {
	s    []Statement
	keys []string
}

func (b byKey) Len() int           { return len(b.s) }
func (b byKey) Less(i, j int) bool { return b.keys[i] < b.keys[j] }
func (b byKey) Swap(i, j int) {
	b.s[i], b.s[j] = b.s[j], b.s[i]
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
}

func (s Statement) canonical() Statement {
	return Statement{
		Sid:          s.Sid,
		Effect:       s.Effect,
		Principal:    s.Principal.canonical(),
		NotPrincipal: s.NotPrincipal.canonical(),
		Action:       set(s.Action, strings.ToLower),
		NotAction:    set(s.NotAction, strings.ToLower),
		Resource:     set(s.Resource, nil),
		NotResource:  set(s.NotResource, nil),
		Condition:    s.Condition.canonical(),
	}
}

func (p Principal) canonical() Principal {
	if len(p) == 0 {
		return nil
	}
	out := Principal{}
	for k, v := range p {
		out[k] = set(v, nil)
	}
	return out
}

func (c Condition) canonical() Condition {
	if len(c) == 0 {
		return nil
	}
	out := Condition{}
	for op, keys := range c {
		m := map[string]StringList{}
		// Condition keys are case-insensitive in IAM. Keys that differ only
		// in case are separate conditions (all must hold); the first in
		// sorted order takes the lower-case form and the others keep their
		// spelling, so the result never depends on map order.
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			lk := strings.ToLower(k)
			if _, dup := m[lk]; dup {
				lk = lk + "\x00" + k
			}
			m[lk] = set(keys[k], nil)
		}
		out[op] = m
	}
	return out
}

func set(in StringList, norm func(string) string) StringList {
	if len(in) == 0 {
		return nil
	}
	seen := map[string]bool{}
	out := make(StringList, 0, len(in))
	for _, v := range in {
		if norm != nil {
			v = norm(v)
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// Fingerprint identifies a document by meaning: the SHA-256 of its
// canonical form (Document.Canonical) as JSON. Two documents mean the same
// thing when their fingerprints are equal. It is how the operator keeps the
// documents of every role it observed: 32 bytes instead of a parsed document
// or its text.
type Fingerprint [sha256.Size]byte

// Fingerprint returns the document's fingerprint.
func (d Document) Fingerprint() Fingerprint {
	b, _ := json.Marshal(d.Canonical()) // cannot fail: plain strings, maps and slices
	return sha256.Sum256(b)
}

// Equal reports whether two documents mean the same thing.
func Equal(a, b Document) bool {
	return a.Fingerprint() == b.Fingerprint()
}

// EqualRaw compares a document IAM returned (raw, possibly URL-encoded) with
// a desired document.
func EqualRaw(raw string, desired Document) (bool, error) {
	got, err := Parse(raw)
	if err != nil {
		return false, err
	}
	return Equal(got, desired), nil
}

// Size counts the characters of a JSON document the way IAM does for its
// quotas: whitespace is not counted.
func Size(doc string) int {
	n := 0
	for _, r := range doc {
		switch r {
		case ' ', '\t', '\n', '\r':
		default:
			n++
		}
	}
	return n
}
