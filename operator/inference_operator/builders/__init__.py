"""Pure builders: (InferenceService, OperatorConfig, ...) -> the desired child manifest as a dict.

No clock, no environment, no API calls and no I/O imports (import-linter's "pure layers do no I/O",
docs/architecture.md), so the same input always gives the same output and the reconciler can diff and apply.
"""

from inference_operator.builders.children import build_children
from inference_operator.builders.deployment import build_deployment
from inference_operator.builders.hpa import build_hpa
from inference_operator.builders.httproute import build_httproute
from inference_operator.builders.service import build_service

__all__ = ["build_children", "build_deployment", "build_hpa", "build_httproute", "build_service"]
