#!/usr/bin/env python3
"""The project's local Kubernetes cluster: real etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, plus kwok simulating GPU, NPU and CPU nodes. All processes on loopback, no Docker.

    python hack/localcluster.py up | down | status | add-node --kind gpu --name gpu-9

State lives in `.cluster/` (kubeconfig, pki, logs, pids); etcd's data in /dev/shm. `down` stops only
the processes whose pids this script recorded. Binaries come from hack/build-binaries.sh, cached
outside the repo and keyed by the pinned versions in hack/versions.env.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HACK = REPO / "hack"
STATE = Path(os.environ.get("CLUSTER_DIR", REPO / ".cluster"))
PKI, LOGS, PIDS = STATE / "pki", STATE / "logs", STATE / "pids"
KUBECONFIG = STATE / "kubeconfig"
AUDIT_LOG = LOGS / "audit.log"
# The API server's own record of every write (tests/faults prove "one writer" from it): who (user and
# user agent), what (verb, object), when (received and completed, microseconds), with which answer.
# Reads are not recorded, nor kwok's node heartbeats (they would be most of the file).
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "verbs": ["get", "list", "watch"]},
        {"level": "None", "namespaces": ["kube-node-lease"]},
        {"level": "None", "resources": [{"group": "", "resources": ["nodes", "nodes/status"]}]},
        {"level": "Request", "verbs": ["create", "update", "patch"],  # who each write made the holder
         "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
    ],
}
DATA = Path("/dev/shm") / f"inference-operator-{hashlib.sha1(str(STATE).encode()).hexdigest()[:8]}"

PORTS = {
    "etcd": int(os.environ.get("CLUSTER_ETCD_PORT", "22379")),
    "etcd-peer": int(os.environ.get("CLUSTER_ETCD_PEER_PORT", "22380")),
    "apiserver": int(os.environ.get("CLUSTER_APISERVER_PORT", "26443")),
    "scheduler": int(os.environ.get("CLUSTER_SCHEDULER_PORT", "20259")),
    "kwok": int(os.environ.get("CLUSTER_KWOK_PORT", "20247")),
}
# Started in this order, stopped in reverse.
COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]

NODE_KINDS = {
    "gpu": {
        "count_env": "CLUSTER_GPU_NODES", "default": 4,
        "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.memory": "81920",
                   "nvidia.com/gpu.count": "8", "node.kubernetes.io/instance-type": "gpu-a100-8x"},
        "capacity": {"cpu": "96", "memory": "1056Gi", "pods": "110", "nvidia.com/gpu": "8",
                     "ephemeral-storage": "2Ti"},
    },
    "npu": {
        "count_env": "CLUSTER_NPU_NODES", "default": 2,
        "labels": {"accelerator": "huawei-Ascend310", "node.kubernetes.io/instance-type": "ascend-310-4x"},
        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110", "huawei.com/ascend-310": "4",
                     "ephemeral-storage": "1Ti"},
    },
    "bench": {  # dense CPU nodes the benchmarks add so that thousands of pods fit (never by default)
        "count_env": "CLUSTER_BENCH_NODES", "default": 0,
        "labels": {"node.kubernetes.io/instance-type": "bench-dense"},
        "capacity": {"cpu": "512", "memory": "4Ti", "pods": "1000", "ephemeral-storage": "4Ti"},
    },
    "cpu": {
        "count_env": "CLUSTER_CPU_NODES", "default": 2,
        "labels": {"node.kubernetes.io/instance-type": "cpu-32x"},
        "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"},
    },
}


def log(msg: str) -> None:
    print(f"[cluster] {msg}", flush=True)


def versions() -> dict[str, str]:
    out = {}
    for line in (HACK / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def bin_dir() -> Path:
    cache = Path(os.environ.get("INFERENCE_OPERATOR_CACHE", Path.home() / ".cache" / "inference-operator"))
    return cache / "bin" / versions()["KUBERNETES_VERSION"]


def crd_dirs() -> list[Path]:
    """The cached CRD manifests of Gateway API (standard channel) and of the Inference Extension's
    InferencePool, at the versions pinned in versions.env (hack/build-binaries.sh fetches them)."""
    v = versions()
    crds = bin_dir().parent.parent / "crds"
    return [crds / f"gateway-api@{v['GATEWAY_API_VERSION']}",
            crds / f"gateway-api-inference-extension@{v['GATEWAY_API_INFERENCE_EXTENSION_VERSION']}"]


# The CRDs whose presence the operator follows (it writes HTTPRoutes and InferencePools while they are served).
GATEWAY_CRDS = ["httproutes.gateway.networking.k8s.io", "inferencepools.inference.networking.k8s.io"]


def ensure_binaries() -> Path:
    """Build what is missing (first run: many minutes); later runs find everything cached."""
    wanted = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"]
    if not all((bin_dir() / b).exists() for b in wanted) or not all(d.is_dir() for d in crd_dirs()):
        log(f"building binaries into {bin_dir()} (first run only)")
        subprocess.run(["bash", str(HACK / "build-binaries.sh")], check=True)
    return bin_dir()


# ---------------------------------------------------------------- certificates


def make_pki() -> None:
    """A CA, the apiserver's serving cert, an admin client cert (system:masters) and the SA key pair."""
    if (PKI / "admin.crt").exists():
        return
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    PKI.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=3650)

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    def write_key(path: Path, key) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("inference-operator-local-ca"))
          .issuer_name(name("inference-operator-local-ca")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (PKI / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    write_key(PKI / "ca.key", ca_key)

    def leaf(file: str, subject: x509.Name, usage, sans=None) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(later)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (PKI / f"{file}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(PKI / f"{file}.key", key)

    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local"]
    ips = ["127.0.0.1", "10.96.0.1"]
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    leaf("apiserver", name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    leaf("admin", name("kubernetes-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_key(PKI / "sa.key", sa_key)
    (PKI / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def write_kubeconfig() -> None:
    import base64

    def b64(file: str) -> str:
        return base64.b64encode((PKI / file).read_bytes()).decode()

    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "inference-local", "cluster": {
            "server": f"https://127.0.0.1:{PORTS['apiserver']}", "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": "inference-local", "context": {"cluster": "inference-local", "user": "admin"}}],
        "current-context": "inference-local",
    }
    KUBECONFIG.write_text(json.dumps(config, indent=2))
    KUBECONFIG.chmod(0o600)


# ---------------------------------------------------------------- processes


def component_args(component: str, bins: Path) -> list[str]:
    p, kc = PORTS, str(KUBECONFIG)
    if component == "etcd":
        peer = f"http://127.0.0.1:{p['etcd-peer']}"
        return [str(bins / "etcd"), "--name=node0", f"--data-dir={DATA / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=node0={peer}", "--unsafe-no-fsync=true", "--log-level=warn",
                "--auto-compaction-retention=1", "--quota-backend-bytes=8589934592",
                "--listen-metrics-urls=http://127.0.0.1:0"]
    if component == "kube-apiserver":
        return [str(bins / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={p['apiserver']}",
                f"--tls-cert-file={PKI / 'apiserver.crt'}", f"--tls-private-key-file={PKI / 'apiserver.key'}",
                f"--client-ca-file={PKI / 'ca.crt'}", "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={PKI / 'sa.pub'}",
                f"--service-account-signing-key-file={PKI / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16", "--allow-privileged=true",
                "--endpoint-reconciler-type=none", "--max-requests-inflight=1000",
                "--max-mutating-requests-inflight=500", f"--cert-dir={PKI}",
                # LOCALCLUSTER_PROFILING=true: /debug/pprof for a CPU profile of the API server under load
                f"--profiling={os.environ.get('LOCALCLUSTER_PROFILING', 'false')}",
                # a namespace's deletion deletes each kind's collection; one worker (the default) took
                # minutes for 1,000 services' children on this machine (make bench waits for it)
                "--delete-collection-workers=8",
                f"--audit-policy-file={STATE / 'audit-policy.yaml'}", f"--audit-log-path={AUDIT_LOG}",
                "--audit-log-format=json", "--audit-log-mode=blocking",
                # rotated at 100 MB into audit-<time>.log, all kept (0 would mean the same 100 MB, not
                # "never"): tests/faults/audit.py reads the backups too
                "--audit-log-maxsize=100", "--audit-log-maxbackup=0"]
    if component == "kube-controller-manager":
        return [str(bins / "kube-controller-manager"), f"--kubeconfig={kc}", "--leader-elect=false",
                "--secure-port=0", "--bind-address=127.0.0.1", f"--root-ca-file={PKI / 'ca.crt'}",
                f"--service-account-private-key-file={PKI / 'sa.key'}", "--use-service-account-credentials=false",
                "--kube-api-qps=5000", "--kube-api-burst=10000", "--concurrent-deployment-syncs=50",
                "--concurrent-replicaset-syncs=50", "--concurrent-gc-syncs=50",
                "--horizontal-pod-autoscaler-sync-period=5s", "--controllers=*,-nodeipam,-cloud-node-lifecycle"]
    if component == "kube-scheduler":
        config = STATE / "scheduler.yaml"
        config.write_text(json.dumps({
            "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": kc, "qps": 5000, "burst": 10000},
            "leaderElection": {"leaderElect": False},
        }))
        return [str(bins / "kube-scheduler"), f"--config={config}", "--bind-address=127.0.0.1",
                f"--secure-port={p['scheduler']}", f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"]
    if component == "kwok":
        return [str(bins / "kwok"), f"--kubeconfig={kc}", "--manage-all-nodes=true",
                f"--config={kwok_config()}", "--cidr=10.244.0.0/16", "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40", f"--server-address=127.0.0.1:{p['kwok']}"]
    raise ValueError(component)


def host_address() -> str:
    """This machine's address on its outgoing interface (not loopback: EndpointSlices refuse it), for pods
    whose image says "hostlocal" (hack/kwok-stages.yaml); 127.0.0.1 when it has no other."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the interface
            return str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def kwok_config() -> Path:
    """kwok's own default node stages (from its module, which the build left in the Go module cache)
    followed by the project's pod stages (hack/kwok-stages.yaml): a config replaces the defaults."""
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                              check=True).stdout.strip()
    node_stages = Path(modcache) / f"sigs.k8s.io/kwok@{versions()['KWOK_VERSION']}/kustomize/stage/node"
    if not node_stages.exists():
        subprocess.run(["go", "mod", "download", f"sigs.k8s.io/kwok@{versions()['KWOK_VERSION']}"],
                       check=True, cwd="/tmp")
    parts = [(node_stages / "fast/node-initialize.yaml").read_text(),
             (node_stages / "heartbeat-with-lease/node-heartbeat-with-lease.yaml").read_text(),
             (HACK / "kwok-stages.yaml").read_text().replace("@HOST_ADDRESS@", host_address())]
    path = STATE / "kwok.yaml"
    path.write_text("\n---\n".join(parts))
    return path


def refresh_kwok(bins: Path) -> None:
    """A reused cluster whose kwok runs older pod stages (a failure mode added since) gets kwok restarted."""
    path = STATE / "kwok.yaml"
    before = path.read_text() if path.exists() else None
    if before == kwok_config().read_text():
        return
    pid = pid_of("kwok")
    if pid:
        os.kill(pid, signal.SIGTERM)
        wait_for("the old kwok to exit", lambda: not pid_of("kwok"), 10)
    log("pod stages changed (hack/kwok-stages.yaml): restarting kwok")
    start("kwok", bins)


def pid_of(component: str) -> int | None:
    """The recorded pid, if that process is alive (not a zombie) and runs the binary we started."""
    path = PIDS / f"{component}.pid"
    if not path.exists():
        return None
    pid = int(path.read_text().strip() or 0)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    state = stat.rsplit(")", 1)[1].split()[0]
    return pid if state not in ("Z", "X") and Path(exe.removesuffix(" (deleted)")).name == component else None


def start(component: str, bins: Path) -> None:
    if pid_of(component):
        return
    if component == "kube-apiserver":
        (STATE / "audit-policy.yaml").write_text(json.dumps(AUDIT_POLICY, indent=2))
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    logfile = open(LOGS / f"{component}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(component_args(component, bins), stdout=logfile, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=STATE)
    (PIDS / f"{component}.pid").write_text(str(proc.pid))
    log(f"started {component} (pid {proc.pid}), log {LOGS / (component + '.log')}")


def wait_for(what: str, check, timeout: float, component: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component and not pid_of(component):
            tail = (LOGS / f"{component}.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"[cluster] {component} exited while waiting for {what}; log tail:\n{tail}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet; any failure means "try again"
            pass
        time.sleep(0.2)
    tail = (LOGS / f"{component}.log").read_text(errors="replace")[-3000:] if component else ""
    raise SystemExit(f"[cluster] timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def http_ok(url: str, tls: bool = False) -> bool:
    ctx = None
    if tls:
        ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
        ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
        return resp.status == 200


def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(bin_dir() / "kubectl"), f"--kubeconfig={KUBECONFIG}", *args], input=input,
                            text=True, capture_output=True)
    if check and result.returncode != 0:
        raise SystemExit(f"[cluster] kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result


# ---------------------------------------------------------------- nodes


def node_manifest(kind: str, name: str) -> dict:
    spec = NODE_KINDS[kind]
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "type": "kwok", "inference.io/node-kind": kind, **spec["labels"]}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {},
        # kwok's node-initialize stage keeps these and fills in conditions, addresses and nodeInfo.
        "status": {"capacity": spec["capacity"], "allocatable": spec["capacity"], "phase": "Running"},
    }


def default_nodes() -> list[dict]:
    nodes = []
    for kind, spec in NODE_KINDS.items():
        count = int(os.environ.get(spec["count_env"], spec["default"]))
        nodes += [node_manifest(kind, f"{kind}-node-{i}") for i in range(count)]
    return nodes


def create_nodes(nodes: list[dict]) -> None:
    existing = set(kubectl("get", "nodes", "-o", "name").stdout.split())
    missing = [n for n in nodes if f"node/{n['metadata']['name']}" not in existing]
    if missing:
        kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": missing}))
        log(f"created {len(missing)} fake nodes")


def nodes_ready() -> bool:
    items = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return bool(items) and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        for n in items)


# ---------------------------------------------------------------- commands


def healthy() -> bool:
    try:
        return all(pid_of(c) for c in COMPONENTS) and http_ok(
            f"https://127.0.0.1:{PORTS['apiserver']}/readyz", tls=True)
    except (OSError, urllib.error.URLError):
        return False


def up() -> None:
    t0 = time.monotonic()
    bins = ensure_binaries()
    if healthy():
        log("control plane already running: reusing it")
        refresh_apiserver(bins)
        refresh_kwok(bins)
    else:
        if any(pid_of(c) for c in COMPONENTS):
            log("a partial cluster is running: stopping it first")
            down()
        start_control_plane(bins)
    create_nodes(default_nodes())
    wait_for("the default service account", lambda: kubectl(
        "get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
        60, "kube-controller-manager")
    wait_for("every node Ready", nodes_ready, 60, "kwok")
    if os.environ.get("CLUSTER_GATEWAY_API", "1") != "0":
        install_gateway_crds()
    log(f"ready in {time.monotonic() - t0:.1f}s; export KUBECONFIG={KUBECONFIG}")


def install_gateway_crds() -> None:
    """Gateway API's standard CRDs and the v1 InferencePool CRD, as their projects ship them (server-side
    apply: a no-op when they are there already). CLUSTER_GATEWAY_API=0 leaves them out."""
    args = [arg for d in crd_dirs() for arg in ("-f", str(d))]
    kubectl("apply", "--server-side", "--force-conflicts", *args)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{name}" for name in GATEWAY_CRDS))


def running_args(component: str) -> list[str] | None:
    pid = pid_of(component)
    if not pid:
        return None
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def refresh_apiserver(bins: Path) -> None:
    """A running API server started with other flags (an older checkout: no audit log) is restarted with
    this script's; etcd keeps every object, so nothing is lost."""
    if running_args("kube-apiserver") != component_args("kube-apiserver", bins):
        log("kube-apiserver runs with other flags: restarting it with this script's (e.g. the audit log)")
        restart("kube-apiserver", bins)


def ready(component: str) -> bool:
    if component == "etcd":
        return http_ok(f"http://127.0.0.1:{PORTS['etcd']}/health")
    if component == "kube-apiserver":
        return http_ok(f"https://127.0.0.1:{PORTS['apiserver']}/readyz", tls=True)
    return bool(pid_of(component))


def stop(component: str, sig: int = signal.SIGKILL) -> None:
    """Stop one component abruptly (SIGKILL by default: a crash, no cleanup) and wait until it is gone."""
    pid = pid_of(component)
    if pid:
        os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while pid_of(component) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_of(component):
            os.kill(pid, signal.SIGKILL)
            wait_for(f"{component} to exit", lambda: not pid_of(component), 10)
        with contextlib.suppress(ChildProcessError):  # started by this process (a fault test): reap it
            os.waitpid(pid, os.WNOHANG)
    # A Go process's leader thread is a zombie before its last thread has closed the listening sockets.
    for port in {"etcd": ["etcd", "etcd-peer"], "kube-apiserver": ["apiserver"]}.get(component, []):
        wait_for(f"{component}'s port {PORTS[port]} to be free", lambda port=port: port_free(PORTS[port]), 30)


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def restart(component: str, bins: Path | None = None, sig: int = signal.SIGKILL) -> None:
    """A crash and a restart of one component (faults); etcd's data in /dev/shm survives it."""
    bins = bins or bin_dir()
    stop(component, sig)
    start(component, bins)
    wait_for(f"{component} ready", lambda: ready(component), 90, component)


def signal_component(component: str, sig: int) -> None:
    """SIGSTOP / SIGCONT one component (a frozen process: its sockets stay open, nothing answers)."""
    pid = pid_of(component)
    if not pid:
        raise SystemExit(f"[cluster] {component} is not running")
    os.kill(pid, sig)


def ports_in_use() -> list[str]:
    """Ports of ours that something else already listens on (another cluster, another checkout)."""
    import socket

    busy = []
    for name, port in PORTS.items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{name} {port}")
    return busy


def start_control_plane(bins: Path) -> None:
    busy = ports_in_use()
    if busy:
        raise SystemExit(f"[cluster] ports already in use: {', '.join(busy)}. Another local cluster (another "
                         "checkout?) may be running: stop it with its own `make cluster-down`, or move this "
                         "one with CLUSTER_APISERVER_PORT, CLUSTER_ETCD_PORT, ... (see README)")
    STATE.mkdir(parents=True, exist_ok=True)
    make_pki()
    write_kubeconfig()
    DATA.mkdir(parents=True, exist_ok=True)
    start("etcd", bins)
    wait_for("etcd health", lambda: http_ok(f"http://127.0.0.1:{PORTS['etcd']}/health"), 30, "etcd")
    start("kube-apiserver", bins)
    wait_for("kube-apiserver /readyz", lambda: http_ok(
        f"https://127.0.0.1:{PORTS['apiserver']}/readyz", tls=True), 90, "kube-apiserver")
    for component in ("kube-controller-manager", "kube-scheduler", "kwok"):
        start(component, bins)


def down() -> None:
    for component in reversed(COMPONENTS):
        pid = pid_of(component)
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not pid_of(component):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
            log(f"stopped {component} (pid {pid})")
        (PIDS / f"{component}.pid").unlink(missing_ok=True)
    if DATA.exists():
        subprocess.run(["rm", "-rf", str(DATA)], check=True)


def status() -> int:
    for component in COMPONENTS:
        pid = pid_of(component)
        print(f"{component:26} {'running, pid ' + str(pid) if pid else 'stopped'}")
    if not healthy():
        print("cluster: not ready")
        return 1
    print(f"cluster: ready, kubeconfig {KUBECONFIG}")
    print(kubectl("get", "nodes", "-L", "inference.io/node-kind").stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up")
    sub.add_parser("down")
    sub.add_parser("status")
    add = sub.add_parser("add-node", help="add one fake node of a kind (gpu, npu, cpu)")
    add.add_argument("--kind", choices=sorted(NODE_KINDS), required=True)
    add.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    if args.command == "up":
        up()
    elif args.command == "down":
        down()
    elif args.command == "status":
        return status()
    elif args.command == "add-node":
        create_nodes([node_manifest(args.kind, args.name)])
        wait_for("every node Ready", nodes_ready, 60, "kwok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
