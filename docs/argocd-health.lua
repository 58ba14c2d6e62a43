-- Argo CD health check for inference.io/InferenceService (docs/gitops.md):
-- argocd-cm key resource.customizations.health.inference.io_InferenceService.
-- Reads status.status, written by the operator from what it observed (docs/api.md):
--   running    -> Healthy      (only once status.observedGeneration == metadata.generation)
--                 Progressing  (while Ready is False: instances a spec change asked for come up)
--   finished   -> Healthy      (a batch run that completed)
--   deploying  -> Progressing  (with the progress in percent)
--   concerning -> Degraded     (status.errorMsg)
--   failed     -> Degraded     (status.errorMsg)
--   stopped    -> Suspended
-- A status written for an older generation, or none yet, is Progressing whatever it says.
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function cause(status, fallback)
  if status.errorMsg ~= nil and status.errorMsg ~= "" then
    return status.errorMsg
  end
  local ready = condition(status, "Ready")
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    return ready.message
  end
  return fallback
end

local function percent(status)
  if type(status.progress) == "number" then
    return tostring(math.floor(status.progress)) .. "%"
  end
  return "0%"
end

local status = obj.status
if status == nil or status.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation) ..
    " (status is for " .. tostring(observed or "none") .. ")"
  return hs
end

local state = status.status
local ready = condition(status, "Ready")
if state == "running" and ready ~= nil and ready.status == "False" then
  hs.status = "Progressing"
  hs.message = "Running, " .. percent(status) .. " of the instances ready: " .. cause(status, "scaling up")
elseif state == "running" then
  hs.status = "Healthy"
  hs.message = "Running"
  if status.accessAddress ~= nil then
    hs.message = "Running at " .. status.accessAddress
  end
elseif state == "finished" then
  hs.status = "Healthy"
  hs.message = "The batch run has finished"
elseif state == "deploying" then
  hs.status = "Progressing"
  hs.message = "Deploying: " .. percent(status) .. " of the instances ready"
elseif state == "concerning" then
  hs.status = "Degraded"
  hs.message = "Concerning (" .. percent(status) .. " ready): " .. cause(status, "some instances are not ready")
elseif state == "failed" then
  hs.status = "Degraded"
  hs.message = "Failed: " .. cause(status, "the service failed")
elseif state == "stopped" then
  hs.status = "Suspended"
  hs.message = "Stopped"
else
  hs.status = "Unknown"
  hs.message = "Unknown status " .. tostring(state)
end
return hs
