"""deploy/ for every target, checked statically (no container engine or cluster here):
every YAML parses, Kubernetes manifests validate against the Kubernetes schemas shipped
by kubernetes-validate, compose.yaml against the Compose spec schema, the systemd units
with systemd-analyze, and every process in every target runs its Procfile line verbatim
(the Procfile is parsed, so a changed Procfile line fails here until deploy/ follows)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from tests.ops.test_deploy import procfile, queues_of

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
KUBERNETES_VERSION = "1.30.0"
# Celery prefork's warm shutdown lets running tasks finish; a stop must wait longer.
TASK_TIME_LIMIT = 150
# Registry hosts never appear in the repository (images are named without a registry).
REGISTRY_HOSTS = ("docker.io", "ghcr.io", "quay.io", "gcr.io", "pkg.dev", "ecr.", "pypi.org",
                  "pythonhosted.org", "registry.")
PROCESSES = {"release", "web", "worker", "payments", "beat", "flower"}


def yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


@cache
def manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def sh_command(argv: list[str]) -> str:
    """The command line of `["sh", "-c", LINE]`, the form every target uses."""
    assert argv[:2] == ["sh", "-c"] and len(argv) == 3, argv
    return argv[2]


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


# -- every file ------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs and all(isinstance(doc, dict) for doc in docs)


def test_no_file_of_deploy_names_a_registry_host() -> None:
    for path in [*DEPLOY.rglob("*"), ROOT / ".dockerignore"]:
        if path.is_file():
            text = path.read_text().lower()
            assert not [h for h in REGISTRY_HOSTS if h in text], path


# -- Dockerfile --------------------------------------------------------------------------


@cache
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(fileobj=(DEPLOY / "Dockerfile").open("rb"))
    return parser


def test_dockerfile_is_multi_stage_slim_and_runs_as_a_numeric_non_root_user() -> None:
    parser = dockerfile()
    stages = [i for i in parser.structure if i["instruction"] == "FROM"]
    assert len(stages) >= 2
    assert all("-slim" in stage["value"] for stage in stages)
    last_from = max(i["startline"] for i in stages)
    users = [i["value"] for i in parser.structure
             if i["instruction"] == "USER" and i["startline"] > last_from]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert users[-1].split(":")[0].isdigit()  # runAsNonRoot can verify a numeric user
    copies = [i["value"] for i in parser.structure
              if i["instruction"] == "COPY" and i["startline"] > last_from]
    assert any(c.startswith("--from=build /opt/venv") for c in copies)


def test_dockerfile_pins_dependencies_from_the_constraints_file() -> None:
    runs = [i["value"] for i in dockerfile().structure if i["instruction"] == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs and all("--constraint deploy/constraints.txt" in r for r in installs)
    for instruction in dockerfile().structure:
        if instruction["instruction"] == "COPY" and "--from" not in instruction["value"]:
            *sources, _target = instruction["value"].split()
            for source in sources:
                assert (ROOT / source).exists(), source


def test_dockerfile_copies_every_package_the_distribution_installs() -> None:
    # `booking-worker sandbox` in compose.yaml needs korus_sandbox/ in the image too.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set()
    for instruction in dockerfile().structure:
        if instruction["instruction"] == "COPY" and "--from" not in instruction["value"]:
            *sources, _target = instruction["value"].split()
            copied.update(s.rstrip("/") for s in sources)
    assert packages <= copied, packages - copied


def test_dockerfile_default_command_is_a_procfile_line() -> None:
    command = json.loads(dockerfile().cmd or "[]") if dockerfile().cmd else []
    assert " ".join(command) in procfile().values()


def test_every_runtime_dependency_is_pinned_in_the_constraints() -> None:
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, (
            f"{name} is not pinned in deploy/constraints.txt: run `make constraints`")


# -- compose -----------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def test_compose_file_follows_the_compose_spec_schema() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose(), schema)


def test_compose_runs_every_procfile_process_with_its_procfile_line() -> None:
    services = compose()["services"]
    lines = procfile()
    for name in PROCESSES:
        # "$$" is compose's escape of "$" (compose interpolates ${...} itself).
        assert sh_command(services[name]["command"]).replace("$$", "$") == lines[name], name
    assert set(services) == PROCESSES | {"redis", "sandbox"}
    assert set(lines) == PROCESSES


def test_compose_redis_persists_with_aof_and_beat_runs_twice() -> None:
    services = compose()["services"]
    redis_service = services["redis"]
    assert "./redis.conf:/usr/local/etc/redis/booking-worker.conf:ro" in redis_service["volumes"]
    assert redis_service["command"][1] == "/usr/local/etc/redis/booking-worker.conf"
    assert services["beat"]["deploy"]["replicas"] == 2
    assert services["sandbox"]["profiles"] == ["sandbox"]
    for name in PROCESSES - {"release"}:
        depends = services[name]["depends_on"]
        assert depends["release"]["condition"] == "service_completed_successfully", name
    for name in ("worker", "payments"):
        assert int(services[name]["stop_grace_period"].rstrip("s")) > TASK_TIME_LIMIT


# -- Kubernetes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "doc"),
    [
        pytest.param(s, d, id=f"{s}:{d['kind']}/{d['metadata']['name']}")
        for s, d in manifests()
        # KEDA's ScaledObject is a custom resource without a packaged schema: checked
        # structurally by test_keda_scales_the_workers_on_the_lengths_of_the_queues...
        if not d["apiVersion"].startswith("keda.sh/")
    ],
)
def test_manifest_validates_against_the_kubernetes_schemas(
    source: str, doc: dict[str, Any]
) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused_by_the_validator() -> None:
    """The validator really checks: a misspelt field and a wrong type both fail."""
    web = json.loads(json.dumps(of_kind("Deployment")["booking-web"]))
    web["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, KUBERNETES_VERSION, strict=True)
    web = json.loads(json.dumps(of_kind("Deployment")["booking-web"]))
    web["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, KUBERNETES_VERSION, strict=True)


def containers() -> dict[str, dict[str, Any]]:
    found = {}
    for kind in ("Deployment", "Job"):
        for doc in of_kind(kind).values():
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            found[component(doc)] = container
    return found


def test_kubernetes_runs_every_procfile_process_with_its_procfile_line() -> None:
    lines = procfile()
    found = containers()
    assert set(found) == PROCESSES
    for name, container in found.items():
        assert sh_command(container["command"]) == lines[name], name
        assert container["image"].split(":")[0] == "booking-worker"


def test_every_deployment_has_probes_resources_and_a_disruption_budget() -> None:
    deployments = of_kind("Deployment")
    budgets = {component(doc): doc for doc in of_kind("PodDisruptionBudget").values()}
    assert {component(d) for d in deployments.values()} == PROCESSES - {"release"}
    for doc in deployments.values():
        name = component(doc)
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
        if name == "flower":  # Flower's own unauthenticated health endpoint
            assert live["path"] == ready["path"] == "/healthcheck"
            assert ports[live["port"]] == int(env["PORT"])
        else:
            assert (live["path"], ready["path"]) == ("/healthz", "/readyz")
            port = ports[live["port"]]
            assert port == int(env.get("HEALTH_PORT") or env["PORT"])
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        assert container["securityContext"]["runAsNonRoot"] is True
        assert budgets[name]["spec"]["selector"]["matchLabels"] == (
            doc["spec"]["selector"]["matchLabels"])
        if name in ("worker", "payments"):
            assert pod["terminationGracePeriodSeconds"] > TASK_TIME_LIMIT


def test_beat_runs_two_replicas_behind_the_redbeat_lock() -> None:
    (beat,) = [d for d in of_kind("Deployment").values() if component(d) == "beat"]
    assert beat["spec"]["replicas"] == 2
    assert "beat" not in {so["spec"]["scaleTargetRef"]["name"].removeprefix("booking-")
                          for so in of_kind("ScaledObject").values()}
    from worker import celeryconfig

    assert celeryconfig.beat_scheduler == "redbeat.RedBeatScheduler"


@pytest.mark.parametrize("source", ["keda.yaml", "keda-rabbitmq.yaml"])
def test_keda_scales_the_workers_on_the_lengths_of_the_queues_they_consume(source: str) -> None:
    from worker.queues import REDIS_PRIORITIES

    deployments = of_kind("Deployment")
    lines = procfile()
    objects = [d for s, d in manifests() if s == source]
    assert {o["spec"]["scaleTargetRef"]["name"] for o in objects} == {
        "booking-worker", "booking-payments"}
    for scaled in objects:
        assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["kind"] == "ScaledObject"
        target = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
        consumed = queues_of(lines[component(target)])
        assert scaled["spec"]["minReplicaCount"] >= 1  # never scaled to zero
        assert scaled["spec"]["maxReplicaCount"] > scaled["spec"]["minReplicaCount"]
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger["metadata"]
            if trigger["type"] == "redis":
                # The Redis transport keeps one list per priority step: `q` (priority 0)
                # and `q:3` (the default priority, 5).
                queue, _, step = meta["listName"].partition(":")
                assert step in ("", str(_step_of(REDIS_PRIORITIES.default)))
                assert int(meta["listLength"]) >= 1
            else:
                assert trigger["type"] == "rabbitmq" and meta["mode"] == "QueueLength"
                queue = meta["queueName"]
                assert int(meta["value"]) >= 1
            assert queue in consumed, (source, queue)


def _step_of(priority: int) -> int:
    """kombu's Redis transport files a priority under the step at or below it."""
    steps = [0, 3, 6, 9]
    return max(step for step in steps if step <= priority)


def test_kustomization_lists_every_manifest_but_the_release_job_and_the_rabbitmq_variant() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files - {"release-job.yaml", "keda-rabbitmq.yaml"}


# -- systemd --------------------------------------------------------------------------


def unit_entries(path: Path) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key, []).append(value)
    return entries


def test_systemd_units_run_every_procfile_process_with_its_procfile_line() -> None:
    lines = procfile()
    for name in PROCESSES:
        (exec_start,) = unit_entries(SYSTEMD / f"booking-worker-{name}.service")["ExecStart"]
        prefix, quoted = "/bin/sh -c '", exec_start
        assert quoted.startswith(prefix) and quoted.endswith("'")
        # systemd expands $VAR and %-specifiers itself: "$$" and "%%" are the literals.
        command = quoted[len(prefix):-1].replace("$$", "$").replace("%%", "%")
        assert command == lines[name], name


def test_systemd_units_wait_for_the_release_and_stop_workers_warmly() -> None:
    release = unit_entries(SYSTEMD / "booking-worker-release.service")
    assert release["Type"] == ["oneshot"]
    for name in PROCESSES - {"release"}:
        unit = unit_entries(SYSTEMD / f"booking-worker-{name}.service")
        assert unit["Requires"] == ["booking-worker-release.service"], name
        assert "booking-worker-release.service" in unit["After"][0].split()
        assert unit["Restart"] == ["always"] and unit["User"] == ["booking-worker"]
    for name in ("worker", "payments"):
        unit = unit_entries(SYSTEMD / f"booking-worker-{name}.service")
        assert int(unit["TimeoutStopSec"][0]) > TASK_TIME_LIMIT
        assert unit["KillMode"] == ["mixed"]  # SIGTERM to celery's main process only


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_finds_nothing_to_warn_about() -> None:
    units = sorted(str(p) for p in SYSTEMD.iterdir())
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *units],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr
