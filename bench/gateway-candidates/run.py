"""Usage: .venv/bin/python bench/gateway-candidates/run.py ROUNDS aio-aio aio-raw raw-raw (needs httptools).
Time candidates the way bench_gateway.py does: proxy on CPU 0, model+vegeta on CPU 1, req per CPU-second."""
import sys, os, json, subprocess, time
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))
import bench_gateway as bg
from pathlib import Path
py = sys.executable
body = Path("/tmp/gateway-candidates-body.json")
body.write_text(json.dumps({"inputs": "x" * 242}))
model, mport = bg.start([str(bg.TOOLS / "goproxy"), "-model"], "1")
procs = [model]
cands = {"go-proxy": [str(bg.TOOLS / "goproxy"), "-target", f"http://127.0.0.1:{mport}"],
         "gateway": [py, str(REPO / "hack" / "bench_gateway.py"), "--serve-gateway", str(mport)]}
for m in sys.argv[2:]:
    cands[m] = [py, str(REPO / "bench" / "gateway-candidates" / "proto.py"), m, str(mport)]
urls = {}
for name, cmd in cands.items():
    p, port = bg.start(cmd, "0"); procs.append(p)
    path = f"/v1/infers/{bg.SERVICE_ID}/predict" if name == "gateway" else "/predict"
    urls[name] = (f"http://127.0.0.1:{port}{path}", p.pid)
os.environ["GOMAXPROCS"] = "1"
try:
    for name, (url, pid) in urls.items(): bg.attack(url, body, 1, 0, 8, "1")
    res = {n: [] for n in urls}
    for r in range(int(sys.argv[1])):
        for name, (url, pid) in urls.items():
            before = bg.cpu_seconds(pid)
            out = bg.attack(url, body, 4, 0, 64, "1")
            res[name].append((round(out["throughput"]), round(out["requests"] / (bg.cpu_seconds(pid) - before))))
    print("load", os.getloadavg())
    for n, v in res.items(): print(f"{n:10} (req/s, req per CPU-s): {v}")
finally:
    for p in procs: p.terminate()
