"""`kubectl-infsvc`, the kubectl plugin for InferenceServices: invoke (signed, SSE followed), get, describe."""
