"""The only Kubernetes API client: HTTP, the priority gate, watches, kubeconfig, the operator's identity."""
