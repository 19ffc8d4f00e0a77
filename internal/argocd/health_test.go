package argocd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dir is a kind's directory in Argo CD's upstream layout.
func dir(kind string) string {
	return filepath.Join("..", "..", "config", "argocd", "resource_customizations", "iam.podidentity.io", kind)
}

func script(t *testing.T) string { return scriptOf(t, "PodIdentityBinding") }

func scriptOf(t *testing.T, kind string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir(kind), "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUpstreamLayout runs each kind's health_test.yaml the way Argo CD's own
// tests do: every input in testdata gets exactly the recorded status and
// message. The fixtures are real objects the operator produced (see
// controllers/argocd_fixtures_test.go).
func TestUpstreamLayout(t *testing.T) {
	for _, kind := range []string{"PodIdentityBinding", "PodIdentityGuardrail"} {
		raw, err := os.ReadFile(filepath.Join(dir(kind), "health_test.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var tests struct {
			Tests []struct {
				HealthStatus struct{ Status, Message string } `json:"healthStatus"`
				InputPath    string                           `json:"inputPath"`
			} `json:"tests"`
		}
		if err := yaml.Unmarshal(raw, &tests); err != nil {
			t.Fatal(err)
		}
		if len(tests.Tests) < 3 {
			t.Fatalf("%s: only %d fixtures", kind, len(tests.Tests))
		}
		statuses := map[string]bool{}
		for _, tc := range tests.Tests {
			in, err := os.ReadFile(filepath.Join(dir(kind), tc.InputPath))
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := yaml.Unmarshal(in, &obj); err != nil {
				t.Fatal(err)
			}
			h, err := Evaluate(scriptOf(t, kind), obj)
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != tc.HealthStatus.Status || h.Message != tc.HealthStatus.Message {
				t.Errorf("%s %s: got %+v, want %+v", kind, tc.InputPath, h, tc.HealthStatus)
			}
			statuses[h.Status] = true
		}
		for _, want := range []string{"Healthy", "Progressing", "Degraded"} {
			if !statuses[want] {
				t.Errorf("%s: no fixture is %s", kind, want)
			}
		}
	}
}

func object(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name       string
		obj        string
		wantStatus string
		wantMsg    string
	}{
		{name: "new", obj: `{"metadata":{"generation":1}}`, wantStatus: "Progressing", wantMsg: "Waiting for the operator"},
		{name: "ready", obj: `{"metadata":{"generation":2},"status":{"conditions":[{"type":"RoleSynced","status":"True","reason":"Synced","observedGeneration":2},{"type":"Ready","status":"True","reason":"Available","message":"ok","observedGeneration":2}]}}`,
			wantStatus: "Healthy", wantMsg: "Available: ok"},
		{name: "generation lags", obj: `{"metadata":{"generation":3},"status":{"conditions":[{"type":"Ready","status":"True","reason":"Available","observedGeneration":2}]}}`,
			wantStatus: "Progressing", wantMsg: "generation 3"},
		{name: "conflict", obj: `{"metadata":{"generation":1},"status":{"conditions":[{"type":"Ready","status":"False","reason":"RoleConflict","message":"not ours","observedGeneration":1}]}}`,
			wantStatus: "Degraded", wantMsg: "RoleConflict: not ours"},
		{name: "guardrail", obj: `{"metadata":{"generation":1},"status":{"conditions":[{"type":"Ready","status":"False","reason":"GuardrailViolation","message":"x","observedGeneration":1}]}}`,
			wantStatus: "Degraded", wantMsg: "GuardrailViolation"},
		{name: "provider missing", obj: `{"metadata":{"generation":1},"status":{"conditions":[{"type":"Ready","status":"False","reason":"OIDCProviderMissing","message":"register it","observedGeneration":1}]}}`,
			wantStatus: "Degraded", wantMsg: "OIDCProviderMissing: register it"},
		{name: "retrying", obj: `{"metadata":{"generation":1},"status":{"conditions":[{"type":"Ready","status":"False","reason":"IAMUnavailable","message":"503","observedGeneration":1}]}}`,
			wantStatus: "Progressing", wantMsg: "IAMUnavailable: 503"},
		{name: "deleting", obj: `{"metadata":{"generation":2,"deletionTimestamp":"2026-01-01T00:00:00Z"},"status":{"conditions":[{"type":"Ready","status":"True","reason":"Available","observedGeneration":2}]}}`,
			wantStatus: "Progressing", wantMsg: "Deleting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Evaluate(script(t), object(t, tt.obj))
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != tt.wantStatus || !strings.Contains(h.Message, tt.wantMsg) {
				t.Errorf("got %+v, want %s containing %q", h, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}

// TestConfigMapPatchCarriesTheScript keeps the argocd-cm snippet identical to health.lua.
func TestConfigMapPatchCarriesTheScript(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "argocd", "argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"PodIdentityBinding", "PodIdentityGuardrail"} {
		got := cm.Data["resource.customizations.health.iam.podidentity.io_"+kind]
		if strings.TrimSpace(got) != strings.TrimSpace(scriptOf(t, kind)) {
			t.Errorf("config/argocd/argocd-cm.yaml is out of date with %s/health.lua; run `make manifests`", kind)
		}
	}
}
