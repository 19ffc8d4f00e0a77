package managedfields

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestOwns(t *testing.T) {
	e := metav1.ManagedFieldsEntry{FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:eks.amazonaws.com/role-arn":{}},` +
		`"f:labels":{"f:team":{}}},"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:status":{}}},"f:pods":{"f:stale":{}}}}`)}}
	for _, c := range []struct {
		path []any
		want bool
	}{
		{[]any{"metadata", "annotations", "eks.amazonaws.com/role-arn"}, true},
		{[]any{"metadata", "annotations", "team"}, false}, // a label of that name is not an annotation
		{[]any{"metadata", "labels", "team"}, true},
		{[]any{"status", "conditions", map[string]string{"type": "Ready"}}, true},
		{[]any{"status", "conditions", map[string]string{"type": "PodsCurrent"}}, false},
		{[]any{"status", "pods"}, true},
		{[]any{"status", "roleArn"}, false},
	} {
		if got := Owns(e, Path(c.path...)); got != c.want {
			t.Errorf("Owns(%v) = %v, want %v", c.path, got, c.want)
		}
	}
	if Owns(metav1.ManagedFieldsEntry{}, Path("metadata")) {
		t.Error("an entry without fields owns nothing")
	}
}
