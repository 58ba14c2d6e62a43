"""The InferenceService API: pydantic models (v1alpha1) and the CRD generated from them (crd)."""
