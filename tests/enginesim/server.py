"""The simulated engine as an HTTP server: OpenAI's chat and completions API (streaming or not), `/v1/models`,
`/health`, and vLLM's metrics on `/metrics` (names and meanings as vLLM's, docs.vllm.ai "Metrics").

    python tests/enginesim/server.py --model qwen --port 0 [--speed 2] [--max-num-seqs 16] ...

prints "PORT <n>" once listening. Output tokens are the words "tok0 tok1 ..."; prompt tokens are the words of
the prompt (for chat, the messages' text contents joined), as in gateway/picker.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from enginesim.lora import AdapterError, Adapters  # noqa: E402
from enginesim.model import Engine, Params  # noqa: E402

ENGINE = web.AppKey("engine", Engine)
MODEL = web.AppKey("model", str)
ADAPTERS = web.AppKey("adapters", Adapters)
METRICS_READS = web.AppKey("metrics_reads", list[int])


def prompt_words(body: dict[str, Any]) -> list[str]:
    if "messages" in body:
        texts = []
        for message in body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(p.get("text", "") for p in content if isinstance(p, dict))
        return " ".join(texts).split()
    prompt = body.get("prompt", "")
    return (" ".join(prompt) if isinstance(prompt, list) else str(prompt)).split()


def _chunk(chat: bool, rid: str, model: str, text: str, finish: str | None) -> dict[str, Any]:
    if chat:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
        return {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "choices": [choice]}
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish}]}


async def complete(request: web.Request) -> web.StreamResponse:
    engine, model = request.app[ENGINE], request.app[MODEL]
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": {"message": "body is not JSON", "type": "invalid_request_error"}},
                                 status=400)
    chat = request.path.endswith("/chat/completions")
    words = prompt_words(body)
    max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
    rid = f"cmpl-{uuid.uuid4().hex}"
    served = body.get("model") or model
    adapters = request.app[ADAPTERS]
    adapter = served if served in adapters.registered else None
    if adapter is None and served != model:
        return web.json_response({"error": {"message": f"The model `{served}` does not exist.",
                                            "type": "NotFoundError", "code": 404}}, status=404)
    if adapter is not None:
        async with adapters.slot(adapter, engine.params.speed):
            return await _answer(request, engine, chat, rid, served, words, max_tokens, body)
    return await _answer(request, engine, chat, rid, served, words, max_tokens, body)


async def _answer(request: web.Request, engine: Engine, chat: bool, rid: str, served: str, words: list[str],
                  max_tokens: int, body: dict[str, Any]) -> web.StreamResponse:
    if not body.get("stream"):
        tokens = [f"tok{i}" async for i in engine.generate(words, max_tokens)]
        answer = _chunk(chat, rid, served, " ".join(tokens), "length")
        if chat:
            answer["object"] = "chat.completion"
            answer["choices"][0] = {"index": 0, "message": {"role": "assistant", "content": " ".join(tokens)},
                                    "finish_reason": "length"}
        answer["usage"] = {"prompt_tokens": len(words), "completion_tokens": len(tokens),
                           "total_tokens": len(words) + len(tokens)}
        return web.json_response(answer)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    async for index in engine.generate(words, max_tokens):
        last = "length" if index == max_tokens - 1 else None
        event = json.dumps(_chunk(chat, rid, served, f"tok{index} ", last))
        await response.write(f"data: {event}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def metrics(request: web.Request) -> web.Response:
    engine, model = request.app[ENGINE], request.app[MODEL]
    request.app[METRICS_READS][0] += 1
    p, s, label = engine.params, engine.stats, f'model_name="{model}"'
    lines = [
        "# TYPE vllm:num_requests_running gauge", f"vllm:num_requests_running{{{label}}} {engine.running}",
        "# TYPE vllm:num_requests_waiting gauge", f"vllm:num_requests_waiting{{{label}}} {engine.waiting}",
        "# TYPE vllm:kv_cache_usage_perc gauge", f"vllm:kv_cache_usage_perc{{{label}}} {engine.kv_usage}",
        "# TYPE vllm:cache_config_info gauge",
        f'vllm:cache_config_info{{block_size="{p.block_size}",num_gpu_blocks="{p.num_gpu_blocks}"}} 1.0',
        "# TYPE vllm:lora_requests_info gauge", request.app[ADAPTERS].info_line(time.time()),
        "# TYPE enginesim:lora_loads_total counter", f"enginesim:lora_loads_total {request.app[ADAPTERS].loads}",
        "# TYPE enginesim:lora_waited_requests_total counter",
        f"enginesim:lora_waited_requests_total {request.app[ADAPTERS].waited_for_load}",
    ]
    for name, value in (("prefix_cache_queries_total", s.prompt_tokens), ("prefix_cache_hits_total", s.cached_tokens),
                        ("request_success_total", s.requests), ("generation_tokens_total", s.generation_tokens)):
        lines += [f"# TYPE vllm:{name} counter", f"vllm:{name}{{{label}}} {value}"]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def models(request: web.Request) -> web.Response:
    base = request.app[MODEL]
    data = [{"id": base, "object": "model", "owned_by": "enginesim", "root": base, "parent": None}]
    data += [{"id": name, "object": "model", "owned_by": "enginesim", "root": path, "parent": base}
             for name, path in request.app[ADAPTERS].registered.items()]
    return web.json_response({"object": "list", "data": data})


async def _lora_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise AdapterError(400, "body is not a JSON object")
    return body


def _refusal(err: AdapterError) -> web.Response:
    return web.json_response({"object": "error", "message": str(err), "type": "BadRequestError",
                              "code": err.status}, status=err.status)


async def load_adapter(request: web.Request) -> web.Response:
    adapters = request.app[ADAPTERS]
    adapters.load_calls += 1
    try:
        body = await _lora_body(request)
        name = str(body.get("lora_name") or "")
        if adapters.register_seconds:
            await asyncio.sleep(adapters.register_seconds)
        request.app[ADAPTERS].register(name, str(body.get("lora_path") or ""))
    except AdapterError as err:
        return _refusal(err)
    return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")


async def unload_adapter(request: web.Request) -> web.Response:
    try:
        body = await _lora_body(request)
        name = str(body.get("lora_name") or "")
        request.app[ADAPTERS].unregister(name)
    except AdapterError as err:
        return _refusal(err)
    return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")


async def lora_state(request: web.Request) -> web.Response:
    """The tests' view of the adapters (not vLLM's API): what is registered, running, waiting, and the counts;
    `metrics_reads`: GET /metrics served (the gateway's readings)."""
    adapters = request.app[ADAPTERS]
    return web.json_response({"registered": adapters.registered, "running": adapters.running(),
                              "waiting": sorted(adapters.waiting), "load_calls": adapters.load_calls,
                              "loads": adapters.loads, "metrics_reads": request.app[METRICS_READS][0]})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def app(model: str, params: Params, adapters: Adapters | None = None) -> web.Application:
    application = web.Application()
    application[ENGINE], application[MODEL] = Engine(params), model
    application[ADAPTERS] = adapters or Adapters()
    application[METRICS_READS] = [0]
    application.router.add_get("/sim/lora", lora_state)
    application.router.add_post("/v1/load_lora_adapter", load_adapter)
    application.router.add_post("/v1/unload_lora_adapter", unload_adapter)
    application.router.add_post("/v1/chat/completions", complete)
    application.router.add_post("/v1/completions", complete)
    application.router.add_get("/v1/models", models)
    application.router.add_get("/metrics", metrics)
    application.router.add_get("/health", health)
    return application


async def main(args: argparse.Namespace) -> None:
    params = Params(args.max_num_seqs, args.block_size, args.num_gpu_blocks, args.prefill_overhead,
                    args.prefill_per_token, args.itl, args.slowdown, args.speed)
    adapters = Adapters(args.max_loras, args.max_adapters, args.lora_load_seconds,
                        register_seconds=args.lora_register_seconds)
    runner = web.AppRunner(app(args.model, params, adapters), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    d = Params()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-num-seqs", type=int, default=d.max_num_seqs)
    parser.add_argument("--block-size", type=int, default=d.block_size)
    parser.add_argument("--num-gpu-blocks", type=int, default=d.num_gpu_blocks)
    parser.add_argument("--prefill-overhead", type=float, default=d.prefill_overhead)
    parser.add_argument("--prefill-per-token", type=float, default=d.prefill_per_token)
    parser.add_argument("--itl", type=float, default=d.itl)
    parser.add_argument("--slowdown", type=float, default=d.slowdown)
    parser.add_argument("--speed", type=float, default=d.speed)
    parser.add_argument("--max-loras", type=int, default=0, help="GPU slots for LoRA adapters; 0: LoRA off")
    parser.add_argument("--max-adapters", type=int, default=64, help="adapters that may be loaded at once")
    parser.add_argument("--lora-register-seconds", type=float, default=0.0,
                        help="how long a POST /v1/load_lora_adapter takes")
    parser.add_argument("--lora-load-seconds", type=float, default=0.1, help="bringing an adapter into a slot")
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(parse()))
