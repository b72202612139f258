"""deploy/: the Dockerfile, Compose file, systemd units and Kubernetes manifests parse, validate
against their schemas (bundled with the validators: no network) and agree with each other."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

pytestmark = pytest.mark.slow  # deploy files: image, compose, systemd, k8s validation

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
CONFIG = DEPLOY / "config" / "stocksync.yaml"
CONFIG_IN_IMAGE = "/etc/stocksync/stocksync.yaml"
# the oldest Kubernetes minor still commonly run, and the newest the validator knows
K8S_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
METRICS = (
    "stocksync_webhooks_received_total",
    "stocksync_inbox_pending",
    "stocksync_inbox_failed",
    "stocksync_events_processed_total",
    "stocksync_push_total",
    "stocksync_push_latency_seconds",
    "stocksync_listings_dirty",
    "stocksync_backorders_open",
    "stocksync_backorders_beyond_capacity",
    "stocksync_drift_units",
    "stocksync_channel_errors_total",
    "stocksync_poll_lag_seconds",
)


# ---------------------------------------------------------------------------- helpers
def unit_entries(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), ...]}: keys may repeat, order matters."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {raw!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {raw!r} is not KEY=VALUE"
        current.append((key.strip(), value.strip()))
    return sections


def unit_value(path: Path, section: str, key: str) -> str:
    values = [v for k, v in unit_entries(path).get(section, []) if k == key]
    assert len(values) == 1, f"{path.name}: [{section}] {key} set {len(values)} times"
    return values[0]


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                yield path, document


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return data


def compose_schema_errors(document: dict[str, Any]) -> list[str]:
    """Errors against the Compose Specification schema that check-jsonschema ships."""
    schema_file = files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


# ---------------------------------------------------------------------------- Dockerfile
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(fileobj=(DEPLOY / "Dockerfile").open("rb"))
    assert parser.structure, "the Dockerfile parsed to nothing"
    return parser


def final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    froms = [i for i, item in enumerate(parser.structure) if item["instruction"] == "FROM"]
    return list(parser.structure[froms[-1] :])


def test_dockerfile_builds_a_slim_image_that_installs_the_package() -> None:
    parser = dockerfile()
    args = {
        item["value"].split("=", 1)[0]: item["value"].split("=", 1)[1]
        for item in parser.structure
        if item["instruction"] == "ARG" and "=" in item["value"]
    }
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], item["value"].split()[0])
        for item in parser.structure
        if item["instruction"] == "FROM"
    ]
    assert len(bases) >= 2, "expected a build stage and a runtime stage"
    for base in bases:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base
    runs = " ".join(i["value"] for i in parser.structure if i["instruction"] == "RUN")
    assert re.search(r"pip install \.", runs), "the package itself is installed"
    copied = " ".join(i["value"] for i in parser.structure if i["instruction"] == "COPY")
    for needed in ("pyproject.toml", "README.md", "rules", "stock", "backorders", "connectors"):
        assert needed in copied, f"{needed} is not copied into the build"
    assert (ROOT / "pyproject.toml").read_text().count('readme = "README.md"') == 1


def test_dockerfile_copies_every_package_and_the_context_allows_each_copy() -> None:
    """A package added to pyproject.toml but not copied would build an image that cannot import
    it; a COPY source excluded by the .dockerignore allow-list would fail the build."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {name.rstrip("*") for name in include}
    sources = set()
    for item in dockerfile().structure:
        if item["instruction"] == "COPY" and not item["value"].startswith("--from"):
            *copied, _target = item["value"].split()
            sources.update(source.rstrip("/") for source in copied)
    assert packages <= sources, f"not copied into the image: {sorted(packages - sources)}"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert sources <= allowed, f"excluded from the build context: {sorted(sources - allowed)}"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"


def test_dockerfile_runtime_stage_is_non_root_with_healthcheck_and_exec_entrypoint() -> None:
    stage = final_stage(dockerfile())
    users = [i["value"] for i in stage if i["instruction"] == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users
    assert user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"
    checks = [i["value"] for i in stage if i["instruction"] == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0], checks
    entrypoint = [i["value"] for i in stage if i["instruction"] == "ENTRYPOINT"]
    # exec (JSON) form, so that SIGTERM reaches stocksync rather than a shell
    assert json.loads(entrypoint[-1]) == ["stocksync"]
    cmd = json.loads([i["value"] for i in stage if i["instruction"] == "CMD"][-1])
    assert cmd == ["--config", CONFIG_IN_IMAGE, "run"]
    assert any(i["instruction"] == "EXPOSE" and i["value"] == "8080" for i in stage)
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert ignore[ignore.index("*") :][:1] == ["*"], "the build context is an allow-list"


# ---------------------------------------------------------------------------- Compose
def test_compose_file_matches_the_compose_specification() -> None:
    assert compose_schema_errors(compose()) == []


def test_compose_schema_check_catches_a_typo() -> None:
    broken = compose()
    broken["services"]["worker"]["restrat"] = "always"
    broken["services"]["run"]["depends_on"]["migrate"]["condition"] = "service_done"
    errors = compose_schema_errors(broken)
    assert any("restrat" in error for error in errors), errors
    assert any("service_done" in error for error in errors), errors


def test_compose_runs_migrations_once_then_daemon_and_scaled_workers() -> None:
    data = compose()
    services = data["services"]
    assert {"postgres", "redis", "migrate", "run", "worker"} <= set(services)
    assert services["migrate"]["command"] == ["--config", CONFIG_IN_IMAGE, "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("run", "worker"):
        service = services[name]
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["restart"] in ("unless-stopped", "always")
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert services["run"]["command"] == ["--config", CONFIG_IN_IMAGE, "run"]
    assert services["worker"]["command"][:3] == ["--config", CONFIG_IN_IMAGE, "worker"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["worker"]["healthcheck"] == {"disable": True}
    assert "/readyz" in " ".join(services["run"]["healthcheck"]["test"])
    assert data["configs"]["stocksync_yaml"]["file"] == "./config/stocksync.yaml"
    # every *_FILE points at a secret the service mounts
    for name in ("migrate", "run", "worker"):
        service = services[name]
        mounted = {f"/run/secrets/{s}" for s in service["secrets"]}
        for key, value in service["environment"].items():
            if key.endswith("_FILE"):
                assert value in mounted, f"{name}: {key}={value} is not a mounted secret"
                assert value.rsplit("/", 1)[1] in data["secrets"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")


def test_compose_config_when_the_plugin_is_installed(tmp_path: Path) -> None:
    """`docker compose config` is the authoritative check; without the plugin, the schema above
    stands in and this test only proves the file is loadable with the variables it requires."""
    env = {"SHOPIFY_SHOP": "a.myshopify.com", "WC_URL": "https://shop.example.com"}
    plugin = (
        subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if shutil.which("docker")
        else None
    )
    if plugin is not None and plugin.returncode == 0:
        result = subprocess.run(
            ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env},
        )
        assert result.returncode == 0, result.stderr
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == set(env), "the README/env.example must name every required variable"
    example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    for name in required:
        assert re.search(rf"^{name}=", example, re.MULTILINE), name


# ---------------------------------------------------------------------------- systemd
UNITS = (
    "stocksync-migrate.service",
    "stocksync-run.service",
    "stocksync-worker.service",
    "stocksync-worker@.service",
)


@pytest.fixture(scope="module")
def systemd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An alternate root for `systemd-analyze verify --root`: the host's own unit library (for
    targets such as sysinit.target), our units, and a stub wherever an Exec* line expects an
    executable (stocksync for ExecStart, kill for ExecReload)."""
    root = tmp_path_factory.mktemp("systemd-root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for name in UNITS:
        shutil.copy(SYSTEMD / name, units / name)
    binaries = {
        Path(value.split()[0].lstrip("-@+!:"))
        for name in UNITS
        for key, value in unit_entries(SYSTEMD / name).get("Service", [])
        if key.startswith("Exec")
    }
    for binary in binaries:
        stub = root / binary.relative_to("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return root


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", f"/etc/systemd/system/{unit}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    "unit",
    [
        "stocksync-migrate.service",
        "stocksync-run.service",
        "stocksync-worker.service",
        "stocksync-worker@3.service",  # an instance of the template
    ],
)
def test_systemd_unit_passes_systemd_analyze_verify(systemd_root: Path, unit: str) -> None:
    result = verify(systemd_root, unit)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # warnings (unknown keys) count too


def test_systemd_analyze_verify_rejects_a_broken_unit(systemd_root: Path) -> None:
    broken = systemd_root / "etc/systemd/system/stocksync-broken.service"
    text = (SYSTEMD / "stocksync-run.service").read_text(encoding="utf-8")
    text = text.replace("Restart=", "Restrat=").replace("[Install]", "ExecStop=relative\n[Install]")
    broken.write_text(text, encoding="utf-8")
    result = verify(systemd_root, broken.name)
    assert "Restrat" in result.stderr
    assert "relative" in result.stderr
    assert result.returncode != 0


def test_systemd_units_restart_and_order_after_migrations() -> None:
    for name in ("stocksync-run.service", "stocksync-worker.service", "stocksync-worker@.service"):
        path = SYSTEMD / name
        assert unit_value(path, "Service", "Restart") in ("on-failure", "always")
        assert unit_value(path, "Service", "KillSignal") == "SIGTERM"
        assert "stocksync-migrate.service" in unit_value(path, "Unit", "Requires")
        assert "stocksync-migrate.service" in unit_value(path, "Unit", "After")
        assert unit_value(path, "Service", "User") != "root"
    migrate = SYSTEMD / "stocksync-migrate.service"
    assert unit_value(migrate, "Service", "Type") == "oneshot"
    assert unit_value(migrate, "Service", "ExecStart").endswith(
        f"--config {CONFIG_IN_IMAGE} db upgrade"
    )
    # the template differs from the single worker unit only in its description
    single = unit_entries(SYSTEMD / "stocksync-worker.service")
    template = unit_entries(SYSTEMD / "stocksync-worker@.service")
    assert single["Service"] == template["Service"]
    assert single["Unit"][1:] == template["Unit"][1:]


# ---------------------------------------------------------------------------- Kubernetes
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_validate_strictly(version: str) -> None:
    kinds = []
    for path, document in k8s_documents():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {exc.message} at {list(exc.path)}")
        kinds.append(document["kind"])
    expected = ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "Job", "Namespace"]
    assert sorted(kinds) == [*expected, "Secret", "Service"]


def test_k8s_validation_catches_a_misspelt_probe() -> None:
    run = k8s_object("Deployment", "stocksync-run")
    container = only_container(run)
    container["livenessProbes"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="livenessProbes"):
        kubernetes_validate.validate(run, K8S_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_k8s_workloads_probe_run_and_start_like_the_image() -> None:
    run = only_container(k8s_object("Deployment", "stocksync-run"))
    assert run["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert run["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert run["command"] == ["stocksync"]
    assert run["args"] == ["--config", CONFIG_IN_IMAGE, "run"]
    run_deployment = k8s_object("Deployment", "stocksync-run")
    assert run_deployment["spec"]["replicas"] == 1, "the scheduler must not run twice"
    assert run_deployment["spec"]["strategy"]["type"] == "Recreate"
    worker_deployment = k8s_object("Deployment", "stocksync-worker")
    assert worker_deployment["spec"]["replicas"] >= 2
    worker = only_container(worker_deployment)
    assert worker["args"][:3] == ["--config", CONFIG_IN_IMAGE, "worker"]
    job = k8s_object("Job", "stocksync-migrate")
    assert only_container(job)["args"] == ["--config", CONFIG_IN_IMAGE, "db", "upgrade"]
    secret_keys = set(k8s_object("Secret", "stocksync-credentials")["stringData"])
    for workload in (run_deployment, worker_deployment, job):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        container = only_container(workload)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert volumes[mounts["/etc/stocksync"]]["configMap"]["name"] == "stocksync-config"
        secret_dir = next(p for p, n in mounts.items() if "secret" in volumes[n])
        for variable in container["env"]:
            if variable["name"].endswith("_FILE"):
                directory, key = variable["value"].rsplit("/", 1)
                assert directory == secret_dir and key in secret_keys, variable
    # the three pods share one environment
    envs = [only_container(w)["env"] for w in (run_deployment, worker_deployment, job)]
    assert envs[0] == envs[1] == envs[2]


def test_k8s_configmap_holds_the_shipped_config() -> None:
    configmap = k8s_object("ConfigMap", "stocksync-config")
    assert configmap["data"]["stocksync.yaml"] == CONFIG.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- the config itself
SECRETS = {
    "STOCKSYNC_DATABASE_URL": None,  # filled in by the test: a real database
    "STOCKSYNC_API_TOKEN": "api-token",
    "SHOPIFY_TOKEN": "shpat_example",
    "SHOPIFY_WEBHOOK_SECRET": "shopify-secret",
    "WC_KEY": "ck_example",
    "WC_SECRET": "cs_example",
    "WC_WEBHOOK_SECRET": "wc-secret",
}


def test_shipped_config_loads_with_secrets_from_files(tmp_path: Path) -> None:
    """The production config as Compose/Kubernetes feed it: plain settings in the environment,
    every secret through VAR_FILE. `stocksync check` validates it and reaches the database."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKSYNC_", "SHOPIFY_"))}
    env.update(
        STOCKSYNC_BROKER_URL="redis://127.0.0.1:6379/7",
        SHOPIFY_SHOP="my-store.myshopify.com",
        WC_URL="https://shop.example.com",
        STOCKSYNC_LOG_LEVEL="debug",
    )
    for name, value in SECRETS.items():
        content = value or f"sqlite:///{tmp_path / 'ledger.db'}"
        (secrets / name.lower()).write_text(content + "\n", encoding="utf-8")
        env[f"{name}_FILE"] = str(secrets / name.lower())
    result = subprocess.run(
        ["stocksync", "--config", str(CONFIG), "check", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["channels"] == {"shop": "shopify", "woo": "woocommerce", "popup": "manual"}
    settings = report["settings"]
    assert settings["logging"] == {"level": "DEBUG", "json": True}
    assert settings["server"]["host"] == "0.0.0.0"  # noqa: S104 containers listen on all interfaces
    assert settings["server"]["port"] == 8080
    for value in SECRETS.values():
        if value:
            assert value not in result.stdout, "a secret was printed"
    assert settings["channels"]["shop"]["token"] == "***"


def test_shipped_config_names_the_variable_that_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCKSYNC_", "SHOPIFY_"))}
    result = subprocess.run(
        ["stocksync", "--config", str(CONFIG), "check", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "STOCKSYNC_DATABASE_URL" in result.stdout
    assert "SHOPIFY_TOKEN" in result.stdout


# ---------------------------------------------------------------------------- docs
def test_metrics_doc_describes_every_exported_metric() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for name in METRICS:
        assert f"`{name}" in text, f"docs/metrics.md does not describe {name}"


def test_docs_name_the_shopify_scopes_and_the_files_they_refer_to() -> None:
    shopify = (ROOT / "docs" / "shopify.md").read_text(encoding="utf-8")
    for scope in (
        "read_orders",
        "read_products",
        "write_inventory",
        "read_locations",
        "write_merchant_managed_fulfillment_orders",
    ):
        assert scope in shopify
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for target in re.findall(r"\]\((?!https?:|#)([^)#]+)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
