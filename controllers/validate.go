package controllers

import (
	"fmt"
	"strings"

	"github.com/podidentity/podidentity-operator/api/v1alpha1"
)

// validate re-checks what admission cannot be relied on for (the CRD schema
// may be older than the operator, or bypassed) before anything reaches IAM.
func validate(b *v1alpha1.PodIdentityBinding) error {
	var errs []string
	sids := map[string]bool{}
	for i, s := range b.Spec.Permissions {
		if len(s.Actions) == 0 {
			errs = append(errs, fmt.Sprintf("spec.permissions[%d].actions must not be empty", i))
		}
		if len(s.Resources) == 0 {
			errs = append(errs, fmt.Sprintf("spec.permissions[%d].resources must not be empty", i))
		}
		if s.Effect != "" && s.Effect != v1alpha1.EffectAllow && s.Effect != v1alpha1.EffectDeny {
			errs = append(errs, fmt.Sprintf("spec.permissions[%d].effect must be Allow or Deny", i))
		}
		if s.Sid != "" {
			if sids[s.Sid] {
				errs = append(errs, fmt.Sprintf("spec.permissions[%d].sid %q is used twice", i, s.Sid))
			}
			sids[s.Sid] = true
		}
	}
	for k := range b.Spec.Tags {
		if strings.HasPrefix(k, "podidentity.io/") {
			errs = append(errs, fmt.Sprintf("spec.tags key %q uses the reserved prefix podidentity.io/", k))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid spec: %s", strings.Join(errs, "; "))
	}
	return nil
}
