"""inference-operator: InferenceService custom resources become GPU Deployments, weighted traffic and status."""

__version__ = "0.1.0"
