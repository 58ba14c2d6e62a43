"""The inference gateway: `/v1/infers/<serviceId>/<path>` -> one model by weight -> a ready endpoint.

It stands in for the cloud's API gateway in front of real-time services (docs/gateway.md,
GATEWAY.md): app authentication, body and time limits, SSE and WebSocket passthrough, and counts.
Pure modules (errors, signing, auth, limits, routes, metrics) hold the rules; `server`, `proxy` and
`websocket` speak HTTP with aiohttp; `watch` is the only module that talks to Kubernetes.
"""
