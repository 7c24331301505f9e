"""compose.yaml and the Dockerfile hold to the Compose specification's rules and to Conduit's
own: every variable they set is a setting, every command a real `conduit` verb with real
options, every probe a real route, and the services start in an order Compose can follow.
`docker build` and `docker compose up` cannot run here (docs/deployment.md); these checks can."""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import AsyncClient

from conduit.config import Environment, JobsBackend, Settings
from tests import deployment_files
from tests.deployment_files import Invocation, MissingVariableError, invocation

pytestmark = pytest.mark.one_pass

SECRET = "a-compose-secret-of-more-than-32-bytes-0123"
SHELL = {"CONDUIT_SECRET_KEY": SECRET}

# The Compose specification's top-level elements and service attributes
# (compose-spec/compose-spec, schema/compose-spec.json); `x-` extensions are allowed anywhere.
TOP_LEVEL = {"version", "name", "include", "services", "networks", "volumes", "secrets", "configs"}
SERVICE_ATTRIBUTES = {
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup",
    "cgroup_parent", "command", "configs", "container_name", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset",
    "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns",
    "dns_opt", "dns_search", "domainname", "entrypoint", "env_file", "environment", "expose",
    "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck", "hostname",
    "image", "init", "ipc", "isolation", "label_file", "labels", "links", "logging", "mac_address",
    "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "network_mode", "networks",
    "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports", "post_start",
    "pre_stop", "privileged", "profiles", "pull_policy", "read_only", "restart", "runtime",
    "scale", "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period",
    "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "user", "userns_mode",
    "uts", "volumes", "volumes_from", "working_dir",
}  # fmt: skip
HEALTHCHECK_ATTRIBUTES = {
    "disable",
    "interval",
    "retries",
    "start_interval",
    "start_period",
    "test",
    "timeout",
}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART_POLICIES = {"no", "always", "on-failure", "unless-stopped"}
# Which verb each of Conduit's services runs.
VERBS = {"migrate": ("migrate",), "api": ("serve",), "worker": ("worker",)}


@pytest.fixture
def compose() -> dict[str, Any]:
    return deployment_files.compose(SHELL)


def _conduit_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this repository's Dockerfile: Conduit's image."""
    return {name: s for name, s in compose["services"].items() if s.get("build") == "."}


def _command(service: dict[str, Any]) -> Invocation:
    """What a Conduit service runs: its `command`, or the image's CMD."""
    return invocation(service.get("command") or deployment_files.image_command())


def _seconds(duration: str) -> float:
    """A Compose duration (`1m30s`, `75s`, `500ms`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000_001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|h|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def _extensions_removed(mapping: dict[str, Any]) -> set[str]:
    return {key for key in mapping if not key.startswith("x-")}


def test_compose_uses_only_what_the_specification_defines(compose: dict[str, Any]) -> None:
    assert _extensions_removed(compose) <= TOP_LEVEL
    for name, service in compose["services"].items():
        assert _extensions_removed(service) <= SERVICE_ATTRIBUTES, name
        assert "image" in service or "build" in service, name
        assert service.get("restart", "no") in RESTART_POLICIES, name
        if "healthcheck" in service:
            assert set(service["healthcheck"]) <= HEALTHCHECK_ATTRIBUTES, name
            test = service["healthcheck"].get("test", ["NONE"])
            assert test[0] in {"CMD", "CMD-SHELL", "NONE"}, name
        for mount in service.get("volumes", ()):
            source = mount.split(":", 1)[0]
            # A named volume (not a path) must be declared at the top level.
            assert source.startswith((".", "/")) or source in compose.get("volumes", {}), name
        environment = service.get("environment", {})
        assert all(isinstance(value, str) for value in environment.values()), name


def test_the_secret_must_be_given_to_compose() -> None:
    with pytest.raises(MissingVariableError, match="CONDUIT_SECRET_KEY"):
        deployment_files.compose({})


def _depends_on(compose: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for name, service in compose["services"].items():
        for target, dependency in service.get("depends_on", {}).items():
            yield name, target, dependency["condition"]


def _has_health_check(compose: dict[str, Any], name: str) -> bool:
    service = compose["services"][name]
    own = service.get("healthcheck", {})
    if own.get("disable"):
        return False
    # Conduit's services without one of their own inherit the image's HEALTHCHECK.
    return "test" in own or name in _conduit_services(compose)


def test_every_dependency_can_be_met_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, target, condition in _depends_on(compose):
        assert target in services, (name, target)
        assert condition in CONDITIONS, (name, condition)
        if condition == "service_healthy":
            assert _has_health_check(compose, target), (name, target)
        if condition == "service_completed_successfully":
            # A service that is restarted never stays completed.
            assert services[target].get("restart", "no") == "no", (name, target)
    # No cycle: every service can be started once those it waits for have.
    started: set[str] = set()
    while len(started) < len(services):
        ready = {
            name
            for name, service in services.items()
            if name not in started and set(service.get("depends_on", {})) <= started
        }
        assert ready, f"a cycle among {sorted(set(services) - started)}"
        started |= ready


def test_the_migration_runs_before_the_api_and_the_worker(compose: dict[str, Any]) -> None:
    dependencies = {(name, target): condition for name, target, condition in _depends_on(compose)}
    for name in ("api", "worker"):
        assert dependencies[name, "migrate"] == "service_completed_successfully"
    assert dependencies["migrate", "postgres"] == "service_healthy"


def test_every_variable_set_for_conduit_is_one_of_its_settings(compose: dict[str, Any]) -> None:
    known = deployment_files.settings_variables()
    image = {k for k in deployment_files.image_environment() if k.startswith("CONDUIT_")}
    assert image <= known
    for name, service in _conduit_services(compose).items():
        assert set(service["environment"]) <= known, name


def test_the_compose_environment_is_a_valid_production_configuration(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in deployment_files.settings_variables():
        monkeypatch.delenv(variable, raising=False)
    for name, service in _conduit_services(compose).items():
        with monkeypatch.context() as environment:
            for variable, value in service["environment"].items():
                environment.setenv(variable, value)
            settings = Settings()

        assert settings.env is Environment.PRODUCTION, name
        assert settings.auth.secret_key.get_secret_value() == SECRET, name
        assert not settings.database.is_sqlite, name
        assert settings.jobs_backend is JobsBackend.PGQUEUER, name
        assert settings.redis.url == "redis://redis:6379/0", name
        # SIGKILL comes after the stop grace period: the process has finished its own by then.
        if name == "api":
            assert _seconds(service["stop_grace_period"]) > settings.http.shutdown_grace_seconds
        if name == "worker":
            assert _seconds(service["stop_grace_period"]) > settings.jobs.timeout_seconds


def test_each_conduit_service_runs_a_real_verb_with_real_options(compose: dict[str, Any]) -> None:
    verbs = {name: _command(service).verb for name, service in _conduit_services(compose).items()}

    assert verbs == VERBS


def test_the_api_is_published_on_the_port_it_serves(compose: dict[str, Any]) -> None:
    serve = invocation(deployment_files.image_command())
    port = serve.parameters["port"]
    assert serve.parameters["host"] == "0.0.0.0"  # noqa: S104 (inside a container)
    assert deployment_files.image_exposed_ports() == {port}
    for name, service in _conduit_services(compose).items():
        published = [int(mapping.rsplit(":", 1)[1]) for mapping in service.get("ports", ())]
        assert published == ([port] if _command(service).verb == ("serve",) else []), name


@pytest.mark.anyio
async def test_the_image_health_check_probes_liveness_on_the_serving_port(
    client: AsyncClient,
) -> None:
    """Liveness, not readiness: an orchestrator restarts a container whose check fails, and
    /health/ready fails for as long as Redis is down, which the API rides out."""
    check = deployment_files.image_health_check()

    assert check.url.path == "/health/live"
    assert (await client.get(check.url.path)).status_code == 200
    assert check.url.port == invocation(deployment_files.image_command()).parameters["port"]
    assert check.command[:2] == ["python", "-c"]
    # The probe gives up before Docker kills it, and so exits 1 rather than being killed.
    (probe_timeout,) = re.findall(r"timeout=(\d+)", check.command[2])
    assert _seconds(check.options["timeout"]) > float(probe_timeout)
