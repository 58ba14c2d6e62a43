"""Memory and latency of Kubernetes client libraries, as the operator would use them (README: why our own client).

Run one candidate per process (each in a venv holding only it, aiohttp and PyYAML, like the operator's
image): `python hack/bench_clients.py LIB` with LIB one of aiohttp (ours: plain aiohttp + kube/),
kubernetes, kubernetes_asyncio, lightkube, kr8s. KUBECONFIG points at the local cluster. Prints one JSON
line: RSS (MiB: /proc's kB / 1024) after the baseline imports, after importing the library, after loading the
kubeconfig and after using it (GETs, a list and a watch that carries a ~900 KB ConfigMap), and GET latency (ms).

The driver `.venv/bin/python hack/bench_clients.py --all VENV_DIR` runs ours with its own interpreter and
every other candidate from VENV_DIR/v-LIB.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

N = 300
NAMESPACE = "default"
NAME = "bench-clients-big"


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered) * 1000, 2),
            "p99": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2)}


async def use_aiohttp(figures: dict) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
    from inference_operator.kube.client import Kube  # noqa: PLC0415

    figures["import"] = rss_mib()
    kube = await Kube.connect("bench")
    figures["load"] = rss_mib()
    path = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
    times = []
    for _ in range(N):
        start = time.perf_counter()
        await kube.get_json(f"{path}/kube-root-ca.crt")
        times.append(time.perf_counter() - start)
    listed = await kube.get_json(path)
    version = listed["metadata"]["resourceVersion"]
    async for _event in kube.stream_events(path, [("fieldSelector", f"metadata.name={NAME}"),
                                                  ("resourceVersion", "0")], timeout=30):
        break
    figures["get"] = summary(times)
    figures["version"] = version
    await kube.close()


def use_kubernetes(figures: dict) -> None:
    from kubernetes import client, config, watch  # noqa: PLC0415

    figures["import"] = rss_mib()
    api = config.new_client_from_config()
    core = client.CoreV1Api(api)
    figures["load"] = rss_mib()
    times = []
    for _ in range(N):
        start = time.perf_counter()
        core.read_namespaced_config_map("kube-root-ca.crt", NAMESPACE)
        times.append(time.perf_counter() - start)
    core.list_namespaced_config_map(NAMESPACE)
    for _event in watch.Watch().stream(core.list_namespaced_config_map, NAMESPACE,
                                       field_selector=f"metadata.name={NAME}", resource_version="0",
                                       timeout_seconds=5):
        break
    figures["get"] = summary(times)


async def use_kubernetes_asyncio(figures: dict) -> None:
    from kubernetes_asyncio import client, config, watch  # noqa: PLC0415

    figures["import"] = rss_mib()
    await config.load_kube_config()
    api = client.ApiClient()
    core = client.CoreV1Api(api)
    figures["load"] = rss_mib()
    times = []
    for _ in range(N):
        start = time.perf_counter()
        await core.read_namespaced_config_map("kube-root-ca.crt", NAMESPACE)
        times.append(time.perf_counter() - start)
    await core.list_namespaced_config_map(NAMESPACE)
    async for _event in watch.Watch().stream(core.list_namespaced_config_map, NAMESPACE,
                                             field_selector=f"metadata.name={NAME}", resource_version="0",
                                             timeout_seconds=5):
        break
    figures["get"] = summary(times)
    await api.close()


async def use_lightkube(figures: dict) -> None:
    from lightkube import AsyncClient  # noqa: PLC0415
    from lightkube.resources.core_v1 import ConfigMap  # noqa: PLC0415

    figures["import"] = rss_mib()
    kube = AsyncClient()
    figures["load"] = rss_mib()
    times = []
    for _ in range(N):
        start = time.perf_counter()
        await kube.get(ConfigMap, "kube-root-ca.crt", namespace=NAMESPACE)
        times.append(time.perf_counter() - start)
    async for _item in kube.list(ConfigMap, namespace=NAMESPACE):
        pass
    async for _event in kube.watch(ConfigMap, namespace=NAMESPACE, fields={"metadata.name": NAME},
                                   resource_version="0"):
        break
    figures["get"] = summary(times)
    await kube.close()


async def use_kr8s(figures: dict) -> None:
    import kr8s.asyncio  # noqa: PLC0415
    from kr8s.asyncio.objects import ConfigMap  # noqa: PLC0415

    figures["import"] = rss_mib()
    kube = await kr8s.asyncio.api()
    figures["load"] = rss_mib()
    times = []
    for _ in range(N):
        start = time.perf_counter()
        await ConfigMap.get("kube-root-ca.crt", namespace=NAMESPACE, api=kube)
        times.append(time.perf_counter() - start)
    async for _item in kube.get("configmaps", namespace=NAMESPACE):
        pass
    async for _event in kube.watch("configmaps", namespace=NAMESPACE, field_selector=f"metadata.name={NAME}"):
        break
    figures["get"] = summary(times)


def measure(lib: str) -> dict:
    import aiohttp  # noqa: F401, PLC0415 - the baseline: what the operator loads anyway
    import yaml  # noqa: F401, PLC0415

    figures: dict = {"lib": lib, "base": rss_mib()}
    start = time.perf_counter()
    runner = {"aiohttp": use_aiohttp, "kubernetes": use_kubernetes, "kubernetes_asyncio": use_kubernetes_asyncio,
              "lightkube": use_lightkube, "kr8s": use_kr8s}[lib]
    result = runner(figures)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    figures["used"] = rss_mib()
    figures["seconds"] = round(time.perf_counter() - start, 2)
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}


def big_configmap() -> None:
    """The ~900 KB ConfigMap every candidate's watch has to carry (created with kubectl-equivalent JSON)."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "namespace": NAMESPACE},
            "data": {"filler": "x" * 900_000}}
    subprocess.run(["kubectl", "apply", "--server-side", "-f", "-"], input=json.dumps(body).encode(), check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    if sys.argv[1] == "--all":
        big_configmap()
        venvs = Path(sys.argv[2])
        for lib in ("aiohttp", "kubernetes", "kubernetes_asyncio", "lightkube", "kr8s"):
            python = Path(sys.executable) if lib == "aiohttp" else venvs / f"v-{lib}" / "bin" / "python"
            for _ in range(int(os.environ.get("BENCH_REPEAT", "3"))):
                subprocess.run([str(python), __file__, lib], check=False)
        return
    print(json.dumps(measure(sys.argv[1])), flush=True)


if __name__ == "__main__":
    main()
