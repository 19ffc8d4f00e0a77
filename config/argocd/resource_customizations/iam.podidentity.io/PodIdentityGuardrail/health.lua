-- Argo CD health check for iam.podidentity.io/PodIdentityGuardrail.
-- Healthy: the operator counted the selected bindings for the current
-- generation and none violates the guardrail.
-- Degraded: some selected bindings violate it (the message names them).
-- Progressing: not counted yet for the current generation.
local hs = {}
local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
if obj.status == nil or (obj.status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to check the selected bindings against generation " .. generation
  return hs
end
local selected = obj.status.selectedBindings or 0
local violating = obj.status.violatingBindings or 0
if violating > 0 then
  hs.status = "Degraded"
  hs.message = violating .. " of " .. selected .. " selected bindings violate this guardrail"
  if obj.status.violations ~= nil and #obj.status.violations > 0 then
    hs.message = hs.message .. ": " .. table.concat(obj.status.violations, "; ")
  end
  return hs
end
hs.status = "Healthy"
hs.message = selected .. " selected bindings, none violates this guardrail"
return hs
