"""The clouds' management APIs on the cluster: `python -m inference_operator.cloudapi` (docs/cloud-api.md).

One process, two dialects on one port told apart by path (ModelArts `/v1/{project_id}/...`, PAI-EAS
`/api/v2/...`). It stores nothing of its own: every answer is read from the API server and every change
is an InferenceService change, made as the caller's Kubernetes identity (impersonation), so who may do
what is the cluster's RBAC and nothing else.
"""
