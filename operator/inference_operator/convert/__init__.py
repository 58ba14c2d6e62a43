"""Migration from the clouds: `python -m inference_operator.convert FILE.json` (docs/migration.md).

Reads a ModelArts create-service JSON (or its GET answer), a PAI-EAS LLM app service
(CreateAppService) or a PAI-EAS service description (eascmd), prints an InferenceService manifest,
and reports on stderr every field it could not carry over as it was.
"""

from __future__ import annotations

from typing import Any

from inference_operator.convert import modelarts, pai
from inference_operator.convert.common import Notes, Options

FORMATS = ("modelarts", "pai-app", "pai-eas")


class UnknownFormatError(ValueError):
    """The JSON is neither a ModelArts nor a PAI-EAS service."""


def detect(data: Any) -> str:
    """modelarts | pai-app | pai-eas, from the keys each format always has."""
    if not isinstance(data, dict):
        raise UnknownFormatError("expected a JSON object")
    if modelarts.is_modelarts(data):
        return "modelarts"
    if pai.is_app_service(data):
        return "pai-app"
    if pai.is_eas_service(data):
        return "pai-eas"
    raise UnknownFormatError("not a ModelArts service (service_name, config[]) nor a PAI-EAS service "
                             "(ServiceName/ServiceSpec, or metadata/containers)")


def convert(data: dict[str, Any], opts: Options | None = None, fmt: str | None = None) -> tuple[dict[str, Any],
                                                                                                 list[str]]:
    """(InferenceService manifest, notes for stderr)."""
    notes = Notes()
    opts = opts or Options()
    kind = fmt or detect(data)
    if kind == "modelarts":
        body = modelarts.convert(data, opts, notes)
    elif kind == "pai-app":
        body = pai.convert_app(data, opts, notes)
    else:
        body = pai.convert_eas(data, opts, notes)
    return body, notes.lines


__all__ = ["FORMATS", "Options", "UnknownFormatError", "convert", "detect"]
