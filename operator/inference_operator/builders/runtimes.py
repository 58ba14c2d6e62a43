"""Serving runtimes: image, arguments and readiness of the model container per `runtime`.

Issue 6 asks `runtime: vllm` (and one more OpenAI-compatible runtime) to build the right arguments:
model path, served name, port, tensor-parallel size = GPUs per instance, dtype from the preset's
precision, readiness on the runtime's health path.

- vllm (vLLM's OpenAI server, cfg.vllm_image = v0.6.3): ``--model /mnt/models --served-model-name
  <modelName> --port <port> --tensor-parallel-size <gpus>``; for presets ``--dtype float16``
  (``bfloat16`` for *_bf16). int4 presets on one GPU add ``--quantization bitsandbytes --load-format
  bitsandbytes`` (vLLM quantizes the fp16 checkpoint in flight; 0.6.3 cannot shard bitsandbytes, so
  a multi-GPU int4 instance gets no flag). vLLM has no in-flight int8: int8 presets, and int4 on
  more than one GPU, need a pre-quantized checkpoint at modelUri (GPTQ, AWQ, W8A8), which vLLM
  recognises from its config.json. Readiness: GET /health (200 once the weights are loaded).
- tgi (Hugging Face text-generation-inference, cfg.tgi_image = 2.4.0; OpenAI API at
  /v1/chat/completions): ``--model-id /mnt/models --port <port> --num-shard <gpus>``; presets add
  ``--dtype float16|bfloat16`` or, for int8/int4 (``--dtype`` and ``--quantize`` exclude each other),
  ``--quantize bitsandbytes`` / ``bitsandbytes-nf4`` (in-flight, any checkpoint). TGI 2.4 has no
  served-name flag: its OpenAI routes accept any "model". Readiness: GET /health.
- custom: the image as given; readiness is a TCP check on the port.
User-given `args` replace the runtime's arguments; user-given `image` replaces its image.
"""

from __future__ import annotations

from typing import Any

from inference_operator.api.v1alpha1 import DEFAULT_MAX_LORAS, ModelSpec
from inference_operator.catalog.flavors import Flavor
from inference_operator.catalog.presets import preset_precision
from inference_operator.config import OperatorConfig

MODEL_DIR = "/mnt/models"
PORT_NAME = "http"
HEALTH_PATHS = {"vllm": "/health", "tgi": "/health"}
SHARED_MEMORY_RUNTIMES = frozenset({"vllm", "tgi"})
_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "int8": "float16", "int4": "float16"}
_TGI_QUANTIZE = {"int8": "bitsandbytes", "int4": "bitsandbytes-nf4"}


def shards(flavor: Flavor) -> int:
    """Tensor-parallel size: one shard per accelerator of the instance (at least 1)."""
    return max(flavor.gpu or flavor.ascend, 1)


def vllm_args(model: ModelSpec, flavor: Flavor) -> list[str]:
    """vLLM's OpenAI server flags: the mounted model (or modelName from the hub), one shard per GPU."""
    source = MODEL_DIR if model.model_uri else model.model_name
    tp = shards(flavor)
    args = ["--model", source, "--served-model-name", model.model_name,
            "--port", str(model.port), "--tensor-parallel-size", str(tp)]
    precision = preset_precision(model.specification)
    if precision:
        args += ["--dtype", _DTYPES[precision]]
    if precision == "int4" and tp == 1:
        args += ["--quantization", "bitsandbytes", "--load-format", "bitsandbytes"]
    if model.lora:  # the count of adapters is not here: adding one must not change the pod template
        args += ["--enable-lora", "--max-loras", str(model.max_loras or DEFAULT_MAX_LORAS)]
    return args


def runtime_env(model: ModelSpec) -> dict[str, str]:
    """The model's envs, and for a vllm model with LoRA on, the switch that lets the operator load and unload
    adapters at run time (vLLM's /v1/load_lora_adapter answers 404 without it)."""
    env = dict(model.envs or {})
    if model.lora:
        env.setdefault("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True")
    return env


def tgi_args(model: ModelSpec, flavor: Flavor) -> list[str]:
    """text-generation-launcher flags: model directory (or hub id), port, one shard per GPU."""
    source = MODEL_DIR if model.model_uri else model.model_name
    args = ["--model-id", source, "--port", str(model.port), "--num-shard", str(shards(flavor))]
    precision = preset_precision(model.specification)
    if precision in _TGI_QUANTIZE:
        args += ["--quantize", _TGI_QUANTIZE[precision]]
    elif precision:
        args += ["--dtype", _DTYPES[precision]]
    return args


def runtime_image(model: ModelSpec, cfg: OperatorConfig) -> str:
    """The user's image, else the runtime's default from the operator settings."""
    if model.image:
        return model.image
    return cfg.tgi_image if model.runtime == "tgi" else cfg.vllm_image


def runtime_args(model: ModelSpec, flavor: Flavor) -> list[str] | None:
    """The user's args, else the runtime's; None for a custom runtime without args."""
    if model.args:
        return list(model.args)
    if model.runtime == "vllm":
        return vllm_args(model, flavor)
    if model.runtime == "tgi":
        return tgi_args(model, flavor)
    return None


def readiness_probe(model: ModelSpec) -> dict[str, Any]:
    """LLM servers answer their health path once the weights are loaded; others only promise the port."""
    path = HEALTH_PATHS.get(model.runtime)
    if path:
        return {"httpGet": {"path": path, "port": PORT_NAME}, "periodSeconds": 5}
    return {"tcpSocket": {"port": PORT_NAME}, "periodSeconds": 5}
