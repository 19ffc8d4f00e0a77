package naming

import (
	"strings"
	"testing"
)

func TestRoleName(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		name                         string
		prefix, cluster, ns, binding string
		want                         string
	}{
		{name: "plain", cluster: "dev", ns: "default", binding: "reader", want: "dev_default_reader"},
		{name: "prefix", prefix: "irsa-", cluster: "dev", ns: "team-a", binding: "s3.writer", want: "irsa-dev_team-a_s3.writer"},
		{name: "invalid characters replaced", prefix: "p/", cluster: "my cluster", ns: "ns", binding: "b", want: "p-my-cluster_ns_b"},
		{name: "exactly 64 kept", cluster: "c", ns: strings.Repeat("n", 30), binding: strings.Repeat("b", 31),
			want: "c_" + strings.Repeat("n", 30) + "_" + strings.Repeat("b", 31)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RoleName(tt.prefix, tt.cluster, tt.ns, tt.binding); got != tt.want {
				t.Errorf("RoleName() = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("long names are shortened to 64 with a hash", func(t *testing.T) {
		a := RoleName("", "dev", long, long+"x")
		b := RoleName("", "dev", long, long+"y")
		if len(a) != MaxRoleNameLength || len(b) != MaxRoleNameLength {
			t.Fatalf("lengths %d and %d, want %d", len(a), len(b), MaxRoleNameLength)
		}
		if a == b {
			t.Fatalf("two bindings share the name %q", a)
		}
		if a != RoleName("", "dev", long, long+"x") {
			t.Fatalf("RoleName is not deterministic")
		}
	})

	t.Run("separator keeps namespace and name apart", func(t *testing.T) {
		// "a-b" + "c" and "a" + "b-c" would collide with "-" as separator.
		if RoleName("", "dev", "a-b", "c") == RoleName("", "dev", "a", "b-c") {
			t.Fatal("names collide")
		}
	})
}

func TestRoleNameOnlyValidCharacters(t *testing.T) {
	for _, in := range []string{"dev", "dév", "a b/c", strings.Repeat("é", 80)} {
		got := RoleName("x", in, "ns", "n")
		if len(got) > MaxRoleNameLength {
			t.Errorf("RoleName(%q) too long: %d", in, len(got))
		}
		for _, r := range got {
			if !ValidRoleNameRune(r) {
				t.Errorf("RoleName(%q) = %q has invalid rune %q", in, got, r)
			}
		}
	}
}

func TestFieldManager(t *testing.T) {
	if got := FieldManager("reader"); got != "podidentity-operator/reader" {
		t.Errorf("got %q", got)
	}
	a, b := FieldManager(strings.Repeat("x", 200)), FieldManager(strings.Repeat("x", 199)+"y")
	if len(a) > 128 || len(b) > 128 || a == b {
		t.Errorf("long managers: %q (%d) %q (%d)", a, len(a), b, len(b))
	}
}
