"""The deployment files as data: the Dockerfile's instructions, compose.yaml as Compose reads it
(its `${...}` interpolated), and the `conduit` command lines they run, parsed by the CLI itself.
Docker cannot run on this project's machines (docs/deployment.md): this is what can be read."""

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import typer
import yaml
from pydantic import BaseModel
from pydantic_settings import BaseSettings
from typer.core import TyperGroup

from conduit import cli
from conduit.config import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile() -> list[Instruction]:
    """The instructions of the Dockerfile's last stage (the image), continuation lines joined;
    comments, also those between continued lines, left out as Docker does."""
    instructions: list[Instruction] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped.removesuffix("\\") + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    last_stage = max(i for i, item in enumerate(instructions) if item.keyword == "FROM")
    return instructions[last_stage:]


def _only(keyword: str) -> str:
    """The arguments of the image's instruction `keyword`; the last one wins, as in Docker."""
    return [item for item in dockerfile() if item.keyword == keyword][-1].arguments


def image_command() -> list[str]:
    """The image's CMD, in exec form."""
    command: list[str] = json.loads(_only("CMD"))
    return command


def image_exposed_ports() -> set[int]:
    return {int(port.removesuffix("/tcp")) for port in _only("EXPOSE").split()}


def image_environment() -> dict[str, str]:
    """The image's ENV, `KEY=value` pairs, quotes removed as Docker does."""
    pairs = (
        word.partition("=")
        for item in dockerfile()
        if item.keyword == "ENV"
        for word in shlex.split(item.arguments)
    )
    return {key: value for key, _, value in pairs}


@dataclass(frozen=True, slots=True)
class HealthCheck:
    options: dict[str, str]
    command: list[str]

    @property
    def url(self) -> SplitResult:
        """The URL the probe opens: the one address in its Python code."""
        addresses: list[str] = re.findall(r"'(http://[^']+)'", self.command[-1])
        (address,) = addresses
        return urlsplit(address)


def image_health_check() -> HealthCheck:
    options, _, command = _only("HEALTHCHECK").partition(" CMD ")
    return HealthCheck(
        options=dict(option.removeprefix("--").split("=", 1) for option in options.split()),
        command=json.loads(command),
    )


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<operator>:?[-?])(?P<argument>[^}]*))?\})"
)


class MissingVariableError(Exception):
    """A `${NAME:?message}` whose variable is unset: Compose stops with the message."""


def _interpolate(value: object, environment: Mapping[str, str]) -> object:
    if isinstance(value, dict):
        return {key: _interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, operator, argument = match["name"], match["operator"], match["argument"]
        found = environment.get(name)
        unset = found is None or (found == "" and operator is not None and ":" in operator)
        if not unset:
            return str(found)
        if operator is not None and operator.endswith("?"):
            raise MissingVariableError(f"{name}: {argument}")
        return argument if operator is not None else ""

    return _VARIABLE.sub(substitute, value)


def compose(environment: Mapping[str, str]) -> dict[str, Any]:
    """compose.yaml as Compose reads it with `environment` as the shell's: YAML merge keys
    resolved, every `${...}` in a value interpolated."""
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    interpolated = _interpolate(document, environment)
    assert isinstance(interpolated, dict)
    return interpolated


@dataclass(frozen=True, slots=True)
class Invocation:
    """A `conduit` command line as the CLI parses it: the verb's path and its parameters."""

    verb: tuple[str, ...]
    parameters: dict[str, Any]


def invocation(argv: list[str]) -> Invocation:
    """Parse `argv` (`conduit serve --port 8000`) with Conduit's Typer app, as running it would,
    without running it: a verb the CLI does not have fails an assertion, an option it does not
    take raises the CLI's own usage error."""
    assert argv[0] == "conduit", argv
    command = typer.main.get_command(cli.app)
    context: typer.Context | None = None
    verb: list[str] = []
    words = argv[1:]
    while isinstance(command, TyperGroup):
        context = typer.Context(command, info_name=" ".join(["conduit", *verb]), parent=context)
        name, *words = words
        found = command.get_command(context, name)
        assert found is not None, f"`{' '.join(argv)}`: conduit has no verb {name!r}"
        verb.append(name)
        command = found
    parsed = command.make_context(verb[-1], words, parent=context)
    return Invocation(tuple(verb), parsed.params)


def settings_variables() -> set[str]:
    """Every environment variable `Settings` reads."""
    return {
        variable
        for name, field in Settings.model_fields.items()
        for variable in (
            _group_variables(field.annotation)
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings)
            else [f"CONDUIT_{name}".upper()]
        )
    }


def _group_variables(group: type[BaseSettings]) -> Iterator[str]:
    prefix = group.model_config.get("env_prefix", "")
    delimiter = group.model_config.get("env_nested_delimiter")
    for name, field in group.model_fields.items():
        annotation = field.annotation
        if isinstance(field.validation_alias, str):
            yield field.validation_alias
        elif delimiter and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from (
                f"{prefix}{name}{delimiter}{part}".upper() for part in annotation.model_fields
            )
        else:
            yield f"{prefix}{name}".upper()
