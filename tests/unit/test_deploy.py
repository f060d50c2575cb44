"""The container and Kubernetes manifests, checked by construction (Docker cannot run here).

Dockerfiles are linted structurally (what hadolint would catch and ConvScope's own rules: a
non-root user, a healthcheck, pinned bases, no secrets, no management port). Every kustomize
overlay and the KServe manifests are rendered with ``kubectl kustomize`` and their security
properties asserted on the rendered objects, so a patch cannot quietly undo them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "deploy" / "docker").glob("Dockerfile*"))
OVERLAYS = sorted(p for p in (REPO / "deploy" / "k8s" / "overlays").iterdir() if p.is_dir())
GATEWAY_PORTS = {50051, 8090}
NEVER_EXPOSED = {8080, 7070, 8081, 7071, 8082, 8083}
"""TorchServe's inference (proxied by the gateway), management and metrics; ConvScope's metrics."""
METRICS_PORTS = {8082, 8083}
TOKEN_AUTH_OFF = re.compile(r"disable_token_authorization\s*=\s*true|--disable-token-auth|TS_DISABLE_TOKEN_AUTH", re.I)
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.I)


# Dockerfiles ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    args: str


def instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                           if not line.lstrip().startswith("#")))
    result, stage = [], -1
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        keyword, _, args = line.partition(" ")
        stage += keyword.upper() == "FROM"
        result.append(Instruction(stage, keyword.upper(), " ".join(args.split())))
    return result


def final_stage(found: list[Instruction]) -> list[Instruction]:
    return [i for i in found if i.stage == found[-1].stage]


@pytest.fixture(params=DOCKERFILES, ids=lambda p: p.name)
def dockerfile(request) -> list[Instruction]:
    return instructions(request.param)


def test_there_are_a_cpu_and_a_cuda_dockerfile():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile", "Dockerfile.cuda"]


def test_runs_as_a_fixed_non_root_user_before_its_entrypoint(dockerfile):
    final = final_stage(dockerfile)
    keywords = [i.keyword for i in final]
    users = [i.args for i in final if i.keyword == "USER"]
    assert users and keywords.index("USER") < keywords.index("ENTRYPOINT")
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000  # numeric: runAsNonRoot can verify it


def test_healthcheck_and_entrypoint(dockerfile):
    final = final_stage(dockerfile)
    checks = [i.args for i in final if i.keyword == "HEALTHCHECK"]
    assert checks and "NONE" not in checks[0] and "healthcheck.py" in checks[0]
    (entrypoint,) = [i.args for i in final if i.keyword == "ENTRYPOINT"]
    assert "convscope-serve" in entrypoint and '"--host", "0.0.0.0"' in entrypoint
    (cmd,) = [i.args for i in final if i.keyword == "CMD"]
    assert "--edge-key-file" in cmd


def test_exposes_only_the_gateway(dockerfile):
    exposed = {int(p.split("/")[0]) for i in dockerfile if i.keyword == "EXPOSE" for p in i.args.split()}
    assert exposed == GATEWAY_PORTS


def test_base_images_are_pinned(dockerfile):
    defaults = dict(re.match(r"(\w+)=(\S+)", i.args).groups() for i in dockerfile if i.keyword == "ARG" and "=" in i.args)
    stages = {i.args.split()[-1] for i in dockerfile if i.keyword == "FROM" and " AS " in i.args.upper()}
    for image in (i.args.split()[0] for i in dockerfile if i.keyword == "FROM"):
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)
        if image in stages:
            continue
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag and tag != "latest" and re.search(r"\d", tag), image


def test_no_secret_remote_add_or_package_cache(dockerfile):
    for i in dockerfile:
        assert not (i.keyword == "ADD" and re.search(r"https?://", i.args)), i
        if i.keyword in ("ENV", "ARG"):
            names = re.findall(r"(\w+)=", i.args) or [i.args.split()[0]]
            assert not [n for n in names if SECRET_NAME.search(n)], i
        if i.keyword == "COPY":
            assert not re.search(r"key_file|\bvar\b|\.key\b", i.args), i
        if i.keyword == "RUN" and "apt-get install" in i.args:
            assert "--no-install-recommends" in i.args and "rm -rf /var/lib/apt/lists/*" in i.args, i
        if i.keyword == "RUN":
            for call in re.findall(r"pip install[^&]*", i.args):
                assert "--no-cache-dir" in call, i
        assert not TOKEN_AUTH_OFF.search(i.args), i


def test_dockerignore_sends_an_allow_list_without_run_state():
    rules = [r for r in (REPO / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"
    included = [r[1:] for r in rules if r.startswith("!")]
    assert not [r for r in included if re.search(r"var|key|\.venv|\.git|\.mar|build", r)], included
    # everything the Dockerfiles COPY from the context is included
    for path in DOCKERFILES:
        for i in instructions(path):
            if i.keyword == "COPY" and "--from" not in i.args:
                for source in i.args.split()[:-1]:
                    assert any(source.rstrip("/").startswith(r.rstrip("/").split("*")[0].rstrip("/"))
                               for r in included), source


# Kubernetes -------------------------------------------------------------------------------------

def render(folder: Path) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the manifests cannot be rendered (apt-get install kubectl)")
    result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda p: p.name)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param.name, render(request.param)


def pod_template(docs: list[dict]) -> dict:
    (deployment,) = of_kind(docs, "Deployment")
    return deployment["spec"]["template"]


def assert_hardened(pod: dict, containers: list[dict]) -> None:
    """Non-root, read-only root, no escalation, no capabilities, RuntimeDefault seccomp."""
    pod_context = pod.get("securityContext") or {}
    for container in containers:
        context = {**pod_context, **(container.get("securityContext") or {})}
        assert context.get("runAsNonRoot") is True and context.get("runAsUser", 0) != 0, container["name"]
        assert context.get("readOnlyRootFilesystem") is True, container["name"]
        assert context.get("allowPrivilegeEscalation") is False, container["name"]
        assert context.get("privileged") in (None, False), container["name"]
        assert "ALL" in context.get("capabilities", {}).get("drop", []), container["name"]
        assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", container["name"]


def assert_edge_key_from_secret(args: list[str], mounts: list[dict], volumes: list[dict]) -> None:
    """``--edge-key-file`` names a file in a read-only mount of a Secret (not subPath: rotation)."""
    path = Path(args[args.index("--edge-key-file") + 1])
    (mount,) = [m for m in mounts if Path(m["mountPath"]) == path.parent]
    assert mount.get("readOnly") is True and "subPath" not in mount
    (volume,) = [v for v in volumes if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] and path.name in [i["path"] for i in volume["secret"].get("items", [])]


def test_every_container_is_hardened(overlay):
    _, docs = overlay
    pod = pod_template(docs)["spec"]
    assert_hardened(pod, pod["containers"] + pod.get("initContainers", []))
    assert pod.get("automountServiceAccountToken") is False


def test_token_auth_is_never_disabled():
    for path in (REPO / "deploy").rglob("*"):
        if path.is_file():
            assert not TOKEN_AUTH_OFF.search(path.read_text(errors="replace")), path
    assert re.search(r"^disable_token_authorization=false$",
                     (REPO / "deploy" / "torchserve" / "config.properties").read_text(), re.M)


def test_the_shared_key_comes_from_a_secret(overlay):
    _, docs = overlay
    pod = pod_template(docs)["spec"]
    (container,) = pod["containers"]
    assert_edge_key_from_secret(container["args"], container["volumeMounts"], pod["volumes"])
    assert not of_kind(docs, "Secret")  # created by the operator, never rendered from the repository


def test_services_expose_only_the_gateway(overlay):
    _, docs = overlay
    (container,) = pod_template(docs)["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for service in of_kind(docs, "Service"):
        if service["spec"].get("type") == "ExternalName":
            continue
        for port in service["spec"]["ports"]:
            target = named.get(port.get("targetPort"), port.get("targetPort", port["port"]))
            assert {port["port"], target} <= GATEWAY_PORTS, port
            assert not {port["port"], target} & NEVER_EXPOSED


def test_probes(overlay):
    _, docs = overlay
    (container,) = pod_template(docs)["spec"]["containers"]
    readiness, liveness, startup = (container[k] for k in ("readinessProbe", "livenessProbe", "startupProbe"))
    assert readiness["grpc"] == {"port": 50051, "service": ""}
    assert "grpc" not in liveness  # liveness must not follow model readiness
    assert startup["grpc"] == {"port": 50051, "service": ""}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_metrics_listen_for_prometheus_and_are_scraped(overlay):
    _, docs = overlay
    pod = pod_template(docs)
    (container,) = pod["spec"]["containers"]
    assert container["args"][container["args"].index("--metrics-host") + 1] == "0.0.0.0"
    names = {p["name"]: p["containerPort"] for p in container["ports"]}
    (monitor,) = of_kind(docs, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    scraped = {names[e["port"]] for e in monitor["spec"]["podMetricsEndpoints"] if e["path"] == "/metrics"}
    assert scraped == METRICS_PORTS | {8090}
    jobs = {r["replacement"] for e in monitor["spec"]["podMetricsEndpoints"] for r in e["relabelings"]}
    assert jobs == {"torchserve", "convscope", "convscope-gateway"}  # deploy/prometheus/alerts.yml's jobs


def test_network_policy_covers_the_pod(overlay):
    _, docs = overlay
    labels = pod_template(docs)["metadata"]["labels"]
    (policy,) = [p for p in of_kind(docs, "NetworkPolicy")
                 if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    allowed: dict[int, list] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            allowed.setdefault(port["port"], []).extend(rule["from"])
    assert set(allowed) == GATEWAY_PORTS | METRICS_PORTS
    for port in METRICS_PORTS:
        assert allowed[port] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} >= {53}


def test_index_volume_and_replicas_agree(overlay):
    """A FAISS index has one writer: a ReadWriteOnce volume means one replica, replaced (Recreate)."""
    name, docs = overlay
    (deployment,) = of_kind(docs, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "/opt/convscope/var/index" in {m["mountPath"] for m in container["volumeMounts"]}
    if "persistentVolumeClaim" in volumes["index"]:
        claims = {c["metadata"]["name"] for c in of_kind(docs, "PersistentVolumeClaim")}
        assert volumes["index"]["persistentVolumeClaim"]["claimName"] in claims
        assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    else:
        assert name == "milvus" and not of_kind(docs, "PersistentVolumeClaim")


def test_gpu_overlay_requests_a_gpu():
    docs = render(REPO / "deploy" / "k8s" / "overlays" / "gpu")
    pod = pod_template(docs)["spec"]
    (container,) = pod["containers"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert "cuda" in container["image"] and pod["nodeSelector"] and pod["tolerations"]


def test_milvus_overlay_points_the_stable_name_at_milvus():
    docs = render(REPO / "deploy" / "k8s" / "overlays" / "milvus")
    (config,) = of_kind(docs, "ConfigMap")
    (external,) = [s for s in of_kind(docs, "Service") if s["spec"].get("type") == "ExternalName"]
    assert external["metadata"]["name"] == "convscope-milvus" and external["spec"]["externalName"] == config["data"]["host"]
    (policy,) = of_kind(docs, "NetworkPolicy")
    assert 19530 in {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    (container,) = pod_template(docs)["spec"]["containers"]
    assert {"name": "MILVUS_TOKEN", "valueFrom": {"secretKeyRef": {"name": "convscope-milvus", "key": "token",
                                                                   "optional": True}}} in container["env"]
    assert of_kind(docs, "Deployment")[0]["spec"]["replicas"] > 1


# KServe -----------------------------------------------------------------------------------------

def test_kserve_uses_the_torchserve_format_with_the_same_hardening():
    docs = render(REPO / "deploy" / "kserve")
    (service,) = of_kind(docs, "InferenceService")
    predictor = service["spec"]["predictor"]
    model = predictor["model"]
    assert model["modelFormat"]["name"] == "pytorch" and model["protocolVersion"] in ("v1", "v2")
    assert model["storageUri"]
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    (runtime,) = [r for r in of_kind(docs, "ServingRuntime") if r["metadata"]["name"] == model["runtime"]]
    assert "pytorch" in [f["name"] for f in runtime["spec"]["supportedModelFormats"]]
    (container,) = runtime["spec"]["containers"]
    assert {p["containerPort"] for p in container["ports"]} <= GATEWAY_PORTS
    # KServe merges the InferenceService's container fields over the runtime's.
    merged = {**container, **model, "securityContext": {**container["securityContext"], **model["securityContext"]}}
    assert_hardened(predictor, [merged])
    assert_edge_key_from_secret(container["args"], model["volumeMounts"], predictor["volumes"])
    assert "--model-store" in container["args"] and container["readinessProbe"]["grpc"]["port"] == 50051
