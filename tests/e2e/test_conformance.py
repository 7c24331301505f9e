"""The official RealWorld conformance suites, run unmodified against a real Conduit server.

* every folder of the Bruno collection (spec 2.0.0), as upstream runs it
  (``bru run <folder> --env local --env-var host=<origin>`` from inside ``bruno/``), but with
  its scripts in Node's own sandbox (``--sandbox developer``) rather than QuickJS's (``safe``):
  the same JavaScript, from suites we pin, for half the CPU (QuickJS costs 0.4 s of CPU a
  request: most of a pass's conformance time, docs/decisions.md). The folders are given to one
  ``bru run``, one after another as upstream's loop runs them, and judged one test each: a
  run of its own per folder would start Bruno 13 times, at 3 s of CPU each;
* the legacy Postman collection (spec 1.1.0) with newman.

Each run's JSON report is parsed; a test fails on any failed request, assertion, test or script
of its own, listing them. A one-line summary per folder and run is printed in pytest's closing
summary.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from tests.e2e import realworld
from tests.e2e.conftest import SERVER_SECRET_KEY

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 300.0
BODY_LIMIT = 400
OUTPUT_TAIL_LINES = 40
LOOPBACK_HOSTS = "127.0.0.1,localhost,::1"


class RunningServer(Protocol):
    @property
    def base_url(self) -> str: ...

    @property
    def api_url(self) -> str: ...

    def diagnostics(self) -> str: ...

    @property
    def log_path(self) -> Path: ...


@dataclass(frozen=True)
class Failure:
    request: str
    check: str
    error: str
    response: str

    def render(self) -> str:
        return f"- {self.request} | {self.check}: {self.error}\n    response: {self.response}"


@dataclass
class RunOutcome:
    label: str
    requests: int = 0
    failed_requests: int = 0
    assertions_passed: int = 0
    assertions_failed: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    script_errors: int = 0
    failures: list[Failure] = field(default_factory=list)

    def summary_line(self) -> str:
        return (
            f"{self.label}: {self.requests} requests ({self.failed_requests} failed), "
            f"assertions {self.assertions_passed}/{self.assertions_passed + self.assertions_failed}"
            f" passed, tests {self.tests_passed}/{self.tests_passed + self.tests_failed} passed, "
            f"{self.script_errors} script errors"
        )

    def failure_report(self, server: RunningServer, report_path: Path) -> str:
        listed = "\n".join(failure.render() for failure in self.failures)
        return (
            f"{self.summary_line()}\nReport: {report_path}\n"
            f"{len(self.failures)} failure(s):\n{listed}\n\n{server.diagnostics()}"
        )


def _tool_env() -> dict[str, str]:
    return {
        **os.environ,
        "NO_PROXY": LOOPBACK_HOSTS,
        "no_proxy": LOOPBACK_HOSTS,
        "FORCE_COLOR": "0",
        "NO_COLOR": "1",
    }


def _tail(output: str) -> str:
    return "\n".join(output.splitlines()[-OUTPUT_TAIL_LINES:])


@dataclass(frozen=True)
class ToolRun:
    exit_code: int
    output: str


def _run_tool(argv: list[str], cwd: Path, label: str, server: RunningServer) -> ToolRun:
    try:
        completed = subprocess.run(  # noqa: S603
            argv,
            cwd=cwd,
            env=_tool_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"{label} did not finish within {RUN_TIMEOUT:.0f} s.\n{server.diagnostics()}",
            pytrace=False,
        )
    return ToolRun(completed.returncode, f"{completed.stdout}\n{completed.stderr}")


def _load_report(path: Path, label: str, run: ToolRun, server: RunningServer) -> Any:
    if not path.is_file():
        pytest.fail(
            f"{label} (exit code {run.exit_code}) wrote no JSON report to {path}; its output ends "
            f"with:\n{_tail(run.output)}\n\n"
            f"{server.diagnostics()}",
            pytrace=False,
        )
    return json.loads(path.read_text(encoding="utf-8"))


def _render_body(body: object) -> str:
    rendered = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    if len(rendered) > BODY_LIMIT:
        return f"{rendered[:BODY_LIMIT]}..."
    return rendered


def _bruno_response(result: dict[str, Any]) -> str:
    response = result.get("response") or {}
    status = response.get("status", "no response")
    return f"HTTP {status} {_render_body(response.get('data'))}"


def _bruno_check_name(check: dict[str, Any]) -> str:
    if "lhsExpr" in check:
        return f"assert {check['lhsExpr']}: {check.get('rhsExpr', '')}"
    return str(check.get("description", "test"))


def _collect_bruno_result(result: dict[str, Any], outcome: RunOutcome) -> None:
    request = str(result.get("path") or result.get("name") or "unknown request")
    response = _bruno_response(result)
    failures: list[Failure] = []
    status = result.get("status")
    if status in {"error", "skipped"} or result.get("error"):
        reason = result.get("error") or result.get("skipReason") or status
        failures.append(Failure(request, f"request {status}", str(reason), response))
    for check in result.get("assertionResults") or []:
        if check.get("status") == "pass":
            outcome.assertions_passed += 1
        else:
            outcome.assertions_failed += 1
            failures.append(
                Failure(request, _bruno_check_name(check), str(check.get("error")), response)
            )
    for key in ("preRequestTestResults", "testResults", "postResponseTestResults"):
        for check in result.get(key) or []:
            passed = check.get("status") == "pass"
            if check.get("isScriptError"):
                outcome.script_errors += 1
            elif passed:
                outcome.tests_passed += 1
            else:
                outcome.tests_failed += 1
            if not passed:
                failures.append(
                    Failure(request, _bruno_check_name(check), str(check.get("error")), response)
                )
    outcome.requests += 1
    outcome.failed_requests += bool(failures)
    outcome.failures.extend(failures)


def _parse_bruno_results(results: list[dict[str, Any]], label: str) -> RunOutcome:
    outcome = RunOutcome(label)
    for result in results:
        _collect_bruno_result(result, outcome)
    return outcome


def _newman_response(execution: dict[str, Any] | None) -> str:
    response = (execution or {}).get("response")
    if not response:
        return "no response"
    stream = response.get("stream") or {}
    body = bytes(stream.get("data") or []).decode("utf-8", errors="replace")
    return f"HTTP {response.get('code')} {_render_body(body)}"


def _parse_newman_report(report: dict[str, Any], label: str) -> RunOutcome:
    run = report["run"]
    stats = run["stats"]
    executions = {execution["cursor"]["ref"]: execution for execution in run["executions"]}
    outcome = RunOutcome(
        label,
        requests=stats["requests"]["total"],
        assertions_passed=stats["assertions"]["total"] - stats["assertions"]["failed"],
        assertions_failed=stats["assertions"]["failed"],
        script_errors=stats["testScripts"]["failed"] + stats["prerequestScripts"]["failed"],
    )
    failed_refs: set[str] = set()
    for failure in run["failures"]:
        source = failure.get("source") or {}
        parent = failure.get("parent") or {}
        error = failure.get("error") or {}
        ref = (failure.get("cursor") or {}).get("ref", "")
        failed_refs.add(ref)
        request = " / ".join(part for part in (parent.get("name"), source.get("name")) if part)
        check = error.get("test") or f"{error.get('name', 'error')} at {failure.get('at')}"
        outcome.failures.append(
            Failure(request, check, error.get("message", ""), _newman_response(executions.get(ref)))
        )
    outcome.failed_requests = len(failed_refs)
    if run.get("error"):
        outcome.failures.append(Failure("(run)", "newman run error", str(run["error"]), ""))
    return outcome


def _judge(
    outcome: RunOutcome,
    run: ToolRun,
    report_path: Path,
    server: RunningServer,
    conformance_summary: list[str],
) -> None:
    conformance_summary.append(outcome.summary_line())
    if outcome.requests == 0:
        pytest.fail(
            f"{outcome.label} sent no requests.\n{_tail(run.output)}\n\n{server.diagnostics()}",
            pytrace=False,
        )
    if outcome.failures:
        pytest.fail(outcome.failure_report(server, report_path), pytrace=False)


def _unexplained(run: ToolRun, outcomes: list[RunOutcome], reported: int = 0) -> Failure | None:
    """A run that failed, by its exit code or by the count of failed requests it `reported`,
    where none of its requests' failures says why."""
    if any(outcome.failures for outcome in outcomes):
        return None
    if reported:
        return Failure("(run)", "bru summary", f"{reported} failed request(s) reported", "")
    if run.exit_code != 0:
        return Failure("(run)", f"runner exit code {run.exit_code}", _tail(run.output), "")
    return None


def _bruno_outcomes(
    folders: list[str], report: list[dict[str, Any]], run: ToolRun
) -> dict[str, RunOutcome]:
    """Each folder's outcome, from the results of one run of them all."""
    results: dict[str, list[dict[str, Any]]] = {folder: [] for folder in folders}
    reported = 0
    for iteration in report:
        for result in iteration.get("results") or []:
            results.setdefault(str(result.get("path", "")).partition("/")[0], []).append(result)
        summary = iteration.get("summary") or {}
        reported += (summary.get("failedRequests") or 0) + (summary.get("errorRequests") or 0)
    outcomes = {
        folder: _parse_bruno_results(results[folder], f"bruno {folder}") for folder in folders
    }
    problem = _unexplained(run, list(outcomes.values()), reported)
    if problem is not None:
        for outcome in outcomes.values():
            outcome.failures.append(problem)
    return outcomes


@dataclass(frozen=True)
class BrunoRun:
    run: ToolRun
    report_path: Path
    outcomes: dict[str, RunOutcome]


@pytest.fixture(scope="module")
def bruno_run(
    realworld_dir: Path,
    conformance_bin: Path,
    conduit_server: RunningServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> BrunoRun:
    """Every folder of the collection there is, in one `bru run`, its results by folder."""
    bruno_dir = realworld_dir / "current" / "bruno"
    folders = [
        folder
        for folder in realworld.bruno_folders(realworld.load_manifest())
        if (bruno_dir / folder).is_dir()
    ]
    report_path = tmp_path_factory.mktemp("bruno") / "bruno.json"
    argv = [
        str(conformance_bin / "bru"),
        "run",
        *folders,
        "--env",
        "local",
        "--env-var",
        f"host={conduit_server.base_url}",
        "--sandbox",
        "developer",
        "--noproxy",
        "--reporter-json",
        str(report_path),
    ]
    run = _run_tool(argv, bruno_dir, "bruno", conduit_server)
    report = _load_report(report_path, "bruno", run, conduit_server)
    outcomes = _bruno_outcomes(folders, report, run)
    return BrunoRun(run, report_path, outcomes)


def test_bruno_folder(
    *,
    realworld_dir: Path,
    bruno_folder: str,
    bruno_run: BrunoRun,
    conduit_server: RunningServer,
    conformance_summary: list[str],
) -> None:
    bruno_dir = realworld_dir / "current" / "bruno"
    if bruno_folder not in bruno_run.outcomes:
        pytest.fail(f"No Bruno request folder {bruno_folder!r} in {bruno_dir}.", pytrace=False)
    outcome = bruno_run.outcomes[bruno_folder]
    _judge(outcome, bruno_run.run, bruno_run.report_path, conduit_server, conformance_summary)


def test_legacy_postman_collection(
    *,
    realworld_dir: Path,
    conformance_bin: Path,
    conduit_server: RunningServer,
    conformance_summary: list[str],
    tmp_path: Path,
) -> None:
    label = "newman legacy"
    collection = realworld_dir / "legacy" / "Conduit.postman_collection.json"
    report_path = tmp_path / "newman.json"
    username = f"legacy_{secrets.token_hex(5)}"
    password = secrets.token_urlsafe(12)
    argv = [
        str(conformance_bin / "newman"),
        "run",
        str(collection),
        "--global-var",
        f"APIURL={conduit_server.api_url}",
        "--global-var",
        f"USERNAME={username}",
        "--global-var",
        f"EMAIL={username}@example.com",
        "--global-var",
        f"PASSWORD={password}",
        "--reporters",
        "cli,json",
        "--reporter-json-export",
        str(report_path),
        "--color",
        "off",
        "--disable-unicode",
        "--timeout-request",
        "30000",
    ]
    run = _run_tool(argv, tmp_path, label, conduit_server)
    report = _load_report(report_path, label, run, conduit_server)
    outcome = _parse_newman_report(report, label)
    unexplained = _unexplained(run, [outcome])
    if unexplained is not None:
        outcome.failures.append(unexplained)
    _judge(outcome, run, report_path, conduit_server, conformance_summary)
    _assert_logged_no_secret(conduit_server, report, password)


_TOKEN = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def _assert_logged_no_secret(server: RunningServer, report: Any, password: str) -> None:
    """The server's log of the whole conformance run holds none of the credentials the suite
    sent or was given: its password, the tokens in its responses, the signing key."""
    bodies = "".join(
        bytes(((execution.get("response") or {}).get("stream") or {}).get("data") or []).decode()
        for execution in report["run"]["executions"]
    )
    tokens = set(_TOKEN.findall(bodies))
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert tokens
    assert password not in log
    assert SERVER_SECRET_KEY not in log
    assert [token for token in tokens if token in log] == []


def _bruno_result(path: str, status: str) -> dict[str, Any]:
    return {
        "path": path,
        "status": "pass",
        "response": {"status": 200, "data": {}},
        "assertionResults": [{"lhsExpr": "res.status", "rhsExpr": "eq 200", "status": status}],
    }


@pytest.mark.one_pass
def test_each_folder_is_judged_on_its_own_requests_and_a_silent_failure_on_all() -> None:
    report = [
        {
            "results": [
                _bruno_result("auth/01-register", "pass"),
                _bruno_result("tags/01-list", "fail"),
            ],
            "summary": {"failedRequests": 1},
        }
    ]

    judged = _bruno_outcomes(["auth", "tags"], report, ToolRun(1, "1 failed"))

    assert (judged["auth"].requests, judged["auth"].failures) == (1, [])
    assert [failure.request for failure in judged["tags"].failures] == ["tags/01-list"]

    silent = _bruno_outcomes(
        ["auth"], [{"results": [], "summary": {"errorRequests": 2}}], ToolRun(1, "")
    )
    assert [failure.check for failure in silent["auth"].failures] == ["bru summary"]
    crashed = _bruno_outcomes(["auth"], [], ToolRun(2, "crashed"))
    assert [failure.check for failure in crashed["auth"].failures] == ["runner exit code 2"]


_READS_BY_TARGET = re.compile(r'^conduit_db_reads_total\{target="([^"]+)"\} (\S+)$', re.MULTILINE)


def test_the_suites_read_from_the_replica_where_there_is_one(
    bruno_run: BrunoRun, conduit_server: RunningServer
) -> None:
    """Through a lagging replica, the suites pass with reads on it: not all on the primary."""
    del bruno_run  # requested so that the suite has run
    checks = httpx.get(f"{conduit_server.base_url}/health/ready", timeout=10).json()["checks"]
    if "replicas" not in checks:
        pytest.skip("this server has no replica")
    metrics = httpx.get(f"{conduit_server.base_url}/metrics", timeout=10).text
    reads = {target: float(count) for target, count in _READS_BY_TARGET.findall(metrics)}
    on_replicas = sum(count for target, count in reads.items() if target != "primary")
    assert on_replicas > 0, reads
