"""Toxiproxy (github.com/Shopify/toxiproxy/v2, built by hack/build-binaries.sh) as a fault proxy in front of
the API server: a TCP proxy whose link can be slowed, made lossy, cut or disabled through its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class Toxiproxy:
    def __init__(self, binary: Path, port: int, log: Path) -> None:
        self.binary, self.port, self.log = binary, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen([str(self.binary), "-host", "127.0.0.1", "-port", str(self.port)],
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self._call("GET", "/version")
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"toxiproxy exited: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.1)  # poll interval of the wait for toxiproxy to answer (bounded: 20 s)
        raise RuntimeError("toxiproxy did not answer within 20s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        try:
            return json.loads(raw) if raw else None
        except ValueError:  # /version answers plain text
            return raw.decode()

    def proxy(self, name: str, listen: int, upstream: int) -> Proxy:
        self._call("POST", "/proxies", {"name": name, "listen": f"127.0.0.1:{listen}",
                                        "upstream": f"127.0.0.1:{upstream}", "enabled": True})
        return Proxy(self, name, listen)


class Proxy:
    def __init__(self, server: Toxiproxy, name: str, listen: int) -> None:
        self.server, self.name, self.listen = server, name, listen

    def enable(self, enabled: bool = True) -> None:
        """Disabled: every connection through it is closed and new ones are refused (cut off)."""
        self.server._call("POST", f"/proxies/{self.name}", {"enabled": enabled})

    def toxic(self, name: str, kind: str, stream: str = "downstream", toxicity: float = 1.0,
              **attributes: Any) -> None:
        """latency {latency, jitter} ms; reset_peer {timeout}; timeout {timeout} (half-open when 0);
        bandwidth {rate} KB/s; slicer; limit_data {bytes}."""
        self.server._call("POST", f"/proxies/{self.name}/toxics",
                          {"name": name, "type": kind, "stream": stream, "toxicity": toxicity,
                           "attributes": attributes})

    def clear(self) -> None:
        try:
            for toxic in self.server._call("GET", f"/proxies/{self.name}/toxics") or []:
                self.server._call("DELETE", f"/proxies/{self.name}/toxics/{toxic['name']}")
        except urllib.error.HTTPError:
            pass
        self.enable(True)


def proxied_kubeconfig(kubeconfig: str, port: int, path: Path) -> str:
    """The cluster's kubeconfig pointing at a proxy port (the serving cert names 127.0.0.1: TLS still holds)."""
    config = json.loads(Path(kubeconfig).read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return str(path)
