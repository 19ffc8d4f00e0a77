// Package managedfields reads managedFields entries as the API server
// writes them: each entry's FieldsV1 is a structured-merge-diff field set,
// so ownership is a set lookup, not a search in its JSON text.
package managedfields

import (
	"bytes"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// Set is the entry's field set (empty when it has none or it does not parse).
func Set(e metav1.ManagedFieldsEntry) *fieldpath.Set {
	s := &fieldpath.Set{}
	if e.FieldsV1 == nil {
		return s
	}
	if err := s.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
		return &fieldpath.Set{}
	}
	return s
}

// Owns reports whether the entry's field set holds path or any field under
// it.
func Owns(e metav1.ManagedFieldsEntry, path fieldpath.Path) bool {
	return Holds(Set(e), path)
}

// Holds reports whether the field set holds path or any field under it.
func Holds(s *fieldpath.Set, path fieldpath.Path) bool {
	found := false
	s.Iterate(func(p fieldpath.Path) {
		found = found || len(p) >= len(path) && p[:len(path)].Equals(path)
	})
	return found
}

// Path builds a field path: a string is a field name, a map[string]string
// the keys of a list item (a condition: {"type": "Ready"}).
func Path(parts ...any) fieldpath.Path {
	var p fieldpath.Path
	for _, part := range parts {
		switch v := part.(type) {
		case string:
			p = append(p, fieldpath.PathElement{FieldName: &v})
		case map[string]string:
			keys := value.FieldList{}
			for k, kv := range v {
				keys = append(keys, value.Field{Name: k, Value: value.NewValueInterface(kv)})
			}
			keys.Sort()
			p = append(p, fieldpath.PathElement{Key: &keys})
		default:
			panic("managedfields.Path: a field name or list item keys")
		}
	}
	return p
}
