"""Where each LoRA adapter of a model is loaded, as status says it (docs/lora.md): per adapter, on how many
ready replicas and why not where not; and the service's cause when an adapter serves nowhere.

Pure: what the engines said comes in as `ModelAdapters` (runtime/adapters.py reads them every round).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inference_operator.api.v1alpha1 import InferenceService, ModelSpec
from inference_operator.status.causes import Cause

NOT_REACHED = "not loaded yet: the operator has not reached a ready replica of the model"
ADAPTER_NOT_LOADED = "AdapterNotLoaded"


@dataclass(frozen=True)
class ModelAdapters:
    """One model's adapters on its ready replicas at the last round: `replicas` ready replicas tried,
    `loaded` replicas holding each adapter (by its engine name), `reasons` why an adapter failed where it
    did (a refused or unanswered load; absent: not tried yet, or loaded everywhere)."""

    replicas: int = 0
    loaded: Mapping[str, int] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)


def adapter_entries(model: ModelSpec, seen: ModelAdapters | None) -> list[dict[str, Any]]:
    """status.models[].adapters: one entry per adapter of the spec, in spec order."""
    entries = []
    for name in model.engine_adapters():
        loaded = seen.loaded.get(name, 0) if seen else 0
        entry: dict[str, Any] = {"name": name, "loadedReplicas": loaded, "replicas": seen.replicas if seen else 0}
        if seen is None or loaded < seen.replicas or seen.replicas == 0:
            entry["reason"] = seen.reasons.get(name, NOT_REACHED) if seen else NOT_REACHED
        entries.append(entry)
    return entries


def adapters_nowhere(svc: InferenceService, adapters: Mapping[str, ModelAdapters]) -> list[Cause]:
    """An adapter loaded on none of its model's ready replicas, whose loads failed: requests for it cannot be
    served, though the model's own can (concerning, naming it). One not tried yet is no cause: it loads within
    a round of the replica becoming ready."""
    causes = []
    for model in svc.spec.models:
        seen = adapters.get(model.name)
        if seen is None or seen.replicas == 0:
            continue
        for name in model.engine_adapters():
            reason = seen.reasons.get(name)
            if seen.loaded.get(name, 0) == 0 and reason is not None:
                causes.append(Cause(ADAPTER_NOT_LOADED, f"adapter {name} of model {model.name} is loaded on none "
                                                        f"of its {seen.replicas} ready replicas: {reason}"))
    return causes
