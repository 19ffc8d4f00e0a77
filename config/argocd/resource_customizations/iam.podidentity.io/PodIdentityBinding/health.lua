-- Argo CD health check for iam.podidentity.io/PodIdentityBinding.
-- Healthy: Ready=True for the current generation.
-- Degraded: a condition the user must fix (conflicts, invalid spec, rejected by IAM,
-- the OIDC provider missing or without the audience).
-- Progressing: anything else (not reconciled yet, generation lagging, retrying, deleting).
local hs = {}
local degraded = {
  InvalidSpec = true,
  GuardrailViolation = true,
  RoleConflict = true,
  ServiceAccountConflict = true,
  IAMRequestRejected = true,
  ServiceAccountError = true,
  DeleteFailed = true,
  OIDCProviderMissing = true,
  AudienceNotRegistered = true,
}

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: cleaning up the IAM role and ServiceAccount annotation"
  return hs
end

local ready = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the binding"
  return hs
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local observed = ready.observedGeneration or 0
if observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. generation
  return hs
end

local message = ready.reason or ""
if ready.message ~= nil and ready.message ~= "" then
  message = message .. ": " .. ready.message
end
if ready.status == "True" then
  hs.status = "Healthy"
elseif degraded[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
