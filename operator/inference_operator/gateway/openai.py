"""OpenAI-compatible routing: which model of a service a `/v1/...` request of OpenAI's API is for.

Pure and synchronous (serve.py does the I/O). For a service with a model whose server speaks
OpenAI's API (`ModelSpec.speaks_openai`: vllm, tgi, or `openaiCompatible: true`):

- `POST .../v1/chat/completions`, `/v1/completions`, `/v1/embeddings`: the body's top-level `model`
  picks the models it names, matched against `modelName` (the served model name vLLM is started
  with, what `/v1/models` lists), else against the entry's `name` (pins one entry, e.g. a canary of
  the same modelName); several matches share by weight. No `model` (or null): the service's weights,
  as for any request. A name nobody serves: 404 in OpenAI's error shape. A body that is not a JSON
  object, or a `model` that is not a string: 400 in that shape (OpenAI's own answer to it).
- `GET .../v1/models` (and `/v1/models/<id>`): answered by the gateway from the spec, in OpenAI's
  list shape, without a call to a model; a LoRA adapter is listed with `parent`, its base model's
  modelName, as vLLM lists it (docs/lora.md). A `model` naming an adapter goes to the model serving it.

The body is hostile. Its size is bounded before this module sees it (the body limit, and the
gateway-wide buffer budget, which is also charged `parse_cost` while the body is parsed); the JSON
decoder is CPython's (C, linear time), and nesting deeper than the interpreter's recursion limit is
a 400, not a crash.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import unquote

from inference_operator.gateway.entries import ModelRoute, ServiceRoute
from inference_operator.gateway.errors import GatewayError

INFER_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
MODELS_PATH = "/v1/models"
VALUE_BYTES = 96  # an upper bound of CPython's memory per decoded JSON container or scalar (dict: 64 + slot)
FIXED_BYTES = 4096  # the decoder's own bookkeeping, whatever the body
_SLASHES = re.compile(r"/{2,}")


class Call(Enum):
    """What an OpenAI-style request asks of the gateway."""

    INFER = "infer"  # route by the body's model
    LIST = "list"  # GET /v1/models
    RETRIEVE = "retrieve"  # GET /v1/models/<id>


@dataclass(frozen=True)
class OpenAIRequest:
    call: Call
    model_id: str = ""  # RETRIEVE: the id asked for


class OpenAIError(GatewayError):
    """A refusal in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__((code or type_, status), message)
        self.type, self.param, self.openai_code = type_, param, code

    def body(self, request_id: str) -> bytes:
        return json.dumps({"error": {"message": self.message, "type": self.type, "param": self.param,
                                     "code": self.openai_code}}).encode()


def speaks_openai(route: ServiceRoute) -> bool:
    return any(model.openai for model in route.models)


def classify(method: str, path: str) -> OpenAIRequest | None:
    """The OpenAI call a request makes (`path`: what the model would see, raw), None for any other.

    The path is compared percent-decoded, with repeated and trailing slashes folded, as the runtimes'
    routers read it: `/v1/chat%2Fcompletions` cannot reach the model's chat route unrouted.
    """
    plain = _SLASHES.sub("/", unquote(path))
    if len(plain) > 1:
        plain = plain.rstrip("/")
    if method == "POST" and plain in INFER_PATHS:
        return OpenAIRequest(Call.INFER)
    if method in ("GET", "HEAD"):
        if plain == MODELS_PATH:
            return OpenAIRequest(Call.LIST)
        if plain.startswith(MODELS_PATH + "/"):
            return OpenAIRequest(Call.RETRIEVE, plain[len(MODELS_PATH) + 1:])
    return None


def parse_cost(body: bytes) -> int:
    """Bytes the decoded body may take at most: its text (4 bytes a character unless ASCII), its strings
    again, and VALUE_BYTES per container or separator (every value but the first follows a `,` or opens
    with `[`/`{`, brackets and commas inside strings only overcount). C-speed counts, no decoding."""
    width = 1 if body.isascii() else 4
    values = body.count(b",") + body.count(b"[") + body.count(b"{") + 1
    return 2 * width * len(body) + VALUE_BYTES * values + FIXED_BYTES


def plain_encoding(content_encoding: str) -> bool:
    """A body the gateway can read as sent: no Content-Encoding, or identity."""
    return content_encoding.strip().lower() in ("", "identity")


def requested_model(body: bytes, content_encoding: str = "") -> str | None:
    """The top-level `model` of a request body; None when absent or null, or when the body is compressed
    (the gateway never decompresses: such a request is routed by weight). Raises OpenAIError 400."""
    return read_request(body, content_encoding)[0]


def read_request(body: bytes, content_encoding: str = "") -> tuple[str | None, dict[str, Any] | None]:
    """`requested_model`, and the decoded body (None when compressed), whose prompt gateway/picker.py reads."""
    if not plain_encoding(content_encoding):
        return None, None
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = "it is nested too deeply" if isinstance(err, RecursionError) else _reason(err)
        raise OpenAIError(400, f"We could not parse the JSON body of your request ({reason}). The body must be "
                               "a JSON object in UTF-8.") from None
    if not isinstance(document, dict):
        raise OpenAIError(400, f"The request body must be a JSON object, not {_json_type(document)}.")
    model = document.get("model")
    if model is None:
        return None, document
    if not isinstance(model, str):
        raise OpenAIError(400, f"Invalid type for 'model': expected a string, but got {_json_type(model)}.",
                          param="model", code="invalid_type")
    return model, document


def _reason(err: ValueError) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at byte {err.pos}"
    return "it is not UTF-8" if isinstance(err, UnicodeDecodeError) else "invalid JSON"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number"}
    return names.get(type(value), "null")


def openai_models(route: ServiceRoute) -> tuple[ModelRoute, ...]:
    return tuple(model for model in route.models if model.openai)


def matching(route: ServiceRoute, name: str) -> tuple[ModelRoute, ...]:
    """The OpenAI-speaking models a `model` value names: by modelName, else by entry name (any weight: a
    dark-launched model can be called by name). Raises OpenAIError 404 when none."""
    models = openai_models(route)
    found = tuple(m for m in models if m.model_name == name) or tuple(m for m in models if m.name == name) \
        or tuple(m for m in models if name in m.adapters)
    if not found:
        raise not_found(name)
    return found


def not_found(name: str) -> OpenAIError:
    return OpenAIError(404, f"The model {_quote(name)} does not exist or you do not have access to it.",
                       param="model", code="model_not_found")


def _quote(text: str, limit: int = 128) -> str:
    """A client's value in a message: ASCII only, bounded (json.dumps escapes the rest anyway)."""
    shown = ascii(text[:limit])[1:-1]
    return f"`{shown}`" + ("..." if len(text) > limit else "")


def model_object(route: ServiceRoute, model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": route.created, "owned_by": route.namespace}


def adapter_version(among: tuple[ModelRoute, ...], name: str, rng: random.Random) -> str | None:
    """For a name split between adapter versions (docs/lora.md), the version a request goes to, drawn by weight:
    the name its engines load it under, which the forwarded body's `model` is set to; None for any other."""
    for model in among:
        for split, found in model.versions:
            if split == name:
                return rng.choices([v for v, _ in found], [w for _, w in found])[0]
    return None


def with_model(document: dict[str, Any], model: str) -> bytes:
    """The request body with its `model` replaced (compact JSON; the rest as decoded)."""
    return json.dumps({**document, "model": model}, separators=(",", ":"), ensure_ascii=False).encode()


def adapter_parents(route: ServiceRoute) -> dict[str, str]:
    """Each LoRA adapter's name -> its base model's modelName, in spec order."""
    return {adapter: model.model_name for model in openai_models(route) for adapter in model.adapters}


def list_models(route: ServiceRoute) -> dict[str, Any]:
    """OpenAI's `GET /v1/models` answer: each served modelName once, in spec order, then the adapters, each
    with its base model as `parent`."""
    names = dict.fromkeys(model.model_name for model in openai_models(route))
    data = [model_object(route, name) for name in names]
    data += [{**model_object(route, name), "parent": parent} for name, parent in adapter_parents(route).items()]
    return {"object": "list", "data": data}


def retrieve_model(route: ServiceRoute, model_id: str) -> dict[str, Any]:
    """OpenAI's `GET /v1/models/<id>` answer; 404 model_not_found for a name the service does not serve."""
    parent = adapter_parents(route).get(model_id)
    if parent is not None:
        return {**model_object(route, model_id), "parent": parent}
    if not any(model.model_name == model_id for model in openai_models(route)):
        raise not_found(model_id)
    return model_object(route, model_id)
