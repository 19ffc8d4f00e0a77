package v1alpha1_test

import (
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestEveryFieldIsDescribed keeps `kubectl explain podidentitybinding.spec`
// useful: every field of spec and status has a description.
func TestEveryFieldIsDescribed(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "iam.podidentity.io_podidentitybindings.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(raw, crd); err != nil {
		t.Fatal(err)
	}
	schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	checked := 0
	var walk func(path string, s apiextensionsv1.JSONSchemaProps)
	walk = func(path string, s apiextensionsv1.JSONSchemaProps) {
		for name, p := range s.Properties {
			child := path + "." + name
			if p.Description == "" {
				t.Errorf("%s has no description", child)
			}
			checked++
			walk(child, p)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(path+"[]", *s.Items.Schema)
		}
	}
	for _, top := range []string{"spec", "status"} {
		walk(top, schema.Properties[top])
	}
	if checked < 20 {
		t.Errorf("only %d fields checked: is the schema read correctly?", checked)
	}
}
