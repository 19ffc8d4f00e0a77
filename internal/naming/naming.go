// Package naming derives deterministic IAM names from a binding's identity.
package naming

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// MaxRoleNameLength is IAM's limit on role names.
const MaxRoleNameLength = 64

// hashLength is the number of hex characters of the identity hash appended to
// names that had to be shortened.
const hashLength = 10

// RoleName returns the IAM role name for a binding:
//
//	<prefix><cluster>_<namespace>_<name>
//
// Namespace and binding names cannot contain "_", so the unshortened form is
// unique per (prefix, cluster, namespace, name). Characters IAM does not accept
// are replaced by "-". When the result is longer than 64 characters it is cut
// and suffixed with "-" and a hash of the full identity, so two bindings still
// get different names.
func RoleName(prefix, cluster, namespace, name string) string {
	full := sanitize(prefix + cluster + "_" + namespace + "_" + name)
	if len(full) <= MaxRoleNameLength {
		return full
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{prefix, cluster, namespace, name}, "\x00")))
	suffix := "-" + hex.EncodeToString(sum[:])[:hashLength]
	return full[:MaxRoleNameLength-len(suffix)] + suffix
}

// sanitize replaces every character IAM does not allow in a role name
// ([A-Za-z0-9+=,.@_-]) with "-".
// GeneratedPrefix is what every generated role name of the cluster starts
// with ("<prefix><cluster>_", sanitised as RoleName sanitises it); a name
// longer than the role name limit keeps it unless the prefix and cluster
// alone take more than 53 characters.
func GeneratedPrefix(prefix, cluster string) string {
	return sanitize(prefix + cluster + "_")
}

func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if ValidRoleNameRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// ValidRoleNameRune reports whether IAM accepts r in a role name.
func ValidRoleNameRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case strings.ContainsRune("+=,.@_-", r):
		return true
	}
	return false
}

// FieldManagerPrefix starts the name of every field manager FieldManager returns.
const FieldManagerPrefix = "podidentity-operator/"

// FieldManager returns the server-side-apply field manager the operator uses
// for a binding's ServiceAccount annotations. One manager per binding lets a
// binding release exactly the fields it set. Field managers are limited to
// 128 characters, so long binding names are hashed.
func FieldManager(bindingName string) string {
	const prefix = FieldManagerPrefix
	m := prefix + bindingName
	if len(m) <= 128 {
		return m
	}
	sum := sha256.Sum256([]byte(bindingName))
	return prefix + bindingName[:128-len(prefix)-hashLength-1] + "-" + hex.EncodeToString(sum[:])[:hashLength]
}
