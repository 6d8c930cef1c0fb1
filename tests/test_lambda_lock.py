"""The Lambda's lock, src/requirements.txt, against pyproject.toml's [project].dependencies.

`make lock` writes the lock with `uv pip compile` for the Lambda's Python and platform, with every file's hash;
`make build` installs exactly it (pip --require-hashes --no-deps).  These checks only read files: no network and
no tools venv.  When one fails after a change to the dependencies, run `make lock`.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "src" / "requirements.txt"
LOCK_PATH = "src/requirements.txt"  # as the lock's own command names it (relative to the repository)
SOURCE = "programs-bridge (pyproject.toml)"  # how uv's `# via` annotations name pyproject.toml's requirements
HASH = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass
class Pin:
    requirement: Requirement
    line: int
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


@dataclass
class Lock:
    header: list[str]
    pins: dict[NormalizedName, Pin]
    problems: list[str]


def parse_lock(text: str) -> Lock:
    """Read a requirements file as uv writes it: pins with `--hash` continuations, `# via` annotations."""
    header: list[str] = []
    pins: dict[NormalizedName, Pin] = {}
    problems: list[str] = []
    current: Pin | None = None
    via_list = False
    entry: list[str] = []
    entry_line = 0

    def finish() -> Pin | None:
        first, *options = re.split(r"\s+(?=--)", " ".join(entry).strip())
        try:
            requirement = Requirement(first)
        except InvalidRequirement:
            problems.append(f"line {entry_line}: {first!r} is not a pinned requirement")
            return None
        pin = Pin(requirement, entry_line)
        for option in options:
            if option.startswith("--hash="):
                pin.hashes.append(option.removeprefix("--hash="))
            else:
                problems.append(f"line {entry_line}: unexpected option {option!r} on {first}")
        name = canonicalize_name(requirement.name)
        if name in pins:
            problems.append(f"line {entry_line}: {name} is locked twice")
        pins[name] = pin
        return pin

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if entry:  # a continuation of the requirement above
            entry.append(line.removesuffix("\\"))
            if not line.endswith("\\"):
                current, entry = finish(), []
        elif not line:
            continue
        elif line.startswith("#"):
            comment = line[1:].strip()
            if current is None and not pins:
                header.append(comment)
            elif current is not None and comment == "via":
                via_list = True
            elif current is not None and comment.startswith("via "):
                current.via.append(comment.removeprefix("via "))
            elif current is not None and via_list and comment:
                current.via.append(comment)
        else:
            entry, entry_line, via_list = [line.removesuffix("\\")], number, False
            if not line.endswith("\\"):
                current, entry = finish(), []
    if entry:
        problems.append(f"line {entry_line}: the lock ends inside a continued line")
    return Lock(header, pins, problems)


def compile_command(lock: Lock) -> list[str]:
    """The command in the header that uv writes: `#    uv pip compile pyproject.toml ...`."""
    for comment in lock.header:
        if comment.startswith("uv pip compile"):
            return shlex.split(comment)
    return []


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command[:-1] else None


def command_values(command: list[str]) -> set[str]:
    """The values of the options that take one in the lock's command."""
    takes_value = {"--python-version", "--python-platform", "--only-binary", "-o", "--output-file"}
    return {command[i + 1] for i, word in enumerate(command[:-1]) if word in takes_value}


def lambda_environment(python_version: str) -> dict[str, str]:
    """The environment markers of the Lambda runtime (CPython on Linux, aarch64), not of this machine."""
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{python_version}.0",
        "os_name": "posix",
        "platform_machine": "aarch64",
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": f"{python_version}.0",
        "python_version": python_version,
        "sys_platform": "linux",
    }


def via_name(annotation: str) -> NormalizedName | None:
    """`boto3` or `aws-lambda-powertools[tracer]` in an annotation; None for a file such as pyproject.toml."""
    match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?", annotation)
    return canonicalize_name(match.group(1)) if match else None


def lock_problems(lock: Lock, dependencies: list[str], python_version: str) -> list[str]:
    """Everything that keeps `lock` from being the exact, hashed resolution of `dependencies`."""
    problems = list(lock.problems)
    for name, pin in lock.pins.items():
        specifiers = list(pin.requirement.specifier)
        if (
            len(specifiers) != 1
            or specifiers[0].operator != "=="
            or "*" in specifiers[0].version
            or pin.requirement.url
        ):
            problems.append(f"line {pin.line}: {pin.requirement} is not pinned to one version with ==")
        if not pin.hashes:
            problems.append(f"line {pin.line}: {name} carries no --hash")
        problems += [f"line {pin.line}: {name} has a malformed hash {h!r}" for h in pin.hashes if not HASH.fullmatch(h)]

    environment = lambda_environment(python_version)
    required: set[NormalizedName] = set()
    for text in dependencies:
        dependency = Requirement(text)
        if dependency.marker is not None and not dependency.marker.evaluate(environment):
            continue  # not installed on the Lambda
        name = canonicalize_name(dependency.name)
        required.add(name)
        locked = lock.pins.get(name)
        if locked is None:
            problems.append(f"pyproject.toml requires {dependency}; the lock has no pin of {name}")
            continue
        versions = [Version(s.version) for s in locked.requirement.specifier if s.operator == "=="]
        if versions and not dependency.specifier.contains(versions[0], prereleases=True):
            problems.append(f"pyproject.toml requires {dependency}; the lock pins {name}=={versions[0]}")
        if missing := dependency.extras - locked.requirement.extras:
            problems.append(f"pyproject.toml requires {dependency}; the lock pins {name} without {sorted(missing)}")

    # uv's annotations say why each package is there: every one must lead back to pyproject.toml.
    for name, pin in lock.pins.items():
        if not pin.via:
            problems.append(f"line {pin.line}: {name} has no '# via' annotation")
        elif SOURCE in pin.via and name not in required:
            problems.append(
                f"line {pin.line}: {name} is locked as a requirement of pyproject.toml, which no longer has it"
            )
    reachable = {name for name, pin in lock.pins.items() if SOURCE in pin.via and name in required}
    grown = True
    while grown:
        before = len(reachable)
        reachable |= {name for name, pin in lock.pins.items() if any(via_name(v) in reachable for v in pin.via)}
        grown = len(reachable) > before
    problems += [
        f"line {pin.line}: {pin.requirement} is locked, but nothing in pyproject.toml requires it"
        f" (via {', '.join(pin.via)})"
        for name, pin in lock.pins.items()
        if pin.via and name not in reachable
    ]
    return problems


def project_dependencies() -> list[str]:
    dependencies: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dependencies


def makefile_variable(name: str) -> str:
    match = re.search(rf"^{name}\s*:?=\s*(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"the Makefile sets no {name}"
    return match.group(1).strip()


# ----------------------------------------------------------------------------------------------- the lock


def test_lock_pins_exactly_the_projects_runtime_dependencies_with_hashes() -> None:
    lock = parse_lock(LOCK.read_text())
    python_version = option(compile_command(lock), "--python-version") or ""
    assert lock.pins, f"{LOCK_PATH} pins nothing"
    problems = lock_problems(lock, project_dependencies(), python_version)
    listing = "\n".join(problems)
    assert not problems, f"{LOCK_PATH} is not the lock of pyproject.toml's dependencies (run `make lock`):\n{listing}"


def test_lock_says_how_it_was_made_from_pyproject_for_the_lambda() -> None:
    lock = parse_lock(LOCK.read_text())
    assert any("make lock" in comment for comment in lock.header), "the header names no `make lock`"
    command = compile_command(lock)
    assert command[:3] == ["uv", "pip", "compile"], f"no `uv pip compile` command in the header: {lock.header}"
    sources = [word for word in command[3:] if not word.startswith("-") and word not in command_values(command)]
    assert sources == ["pyproject.toml"], f"the lock's source is {sources}, not pyproject.toml alone"
    for flag in ("--generate-hashes", "--no-strip-extras"):  # hashes for pip; the extras for the check above
        assert flag in command, f"the lock was made without {flag}"
    assert option(command, "-o") == LOCK_PATH

    # Resolved for the Lambda (template.yaml's runtime, the build's pip), not for the machine that ran it.
    python_version = makefile_variable("LAMBDA_PYTHON")
    assert option(command, "--python-version") == python_version
    runtimes = set(re.findall(r"^\s*Runtime:\s*python(\S+)\s*$", (ROOT / "template.yaml").read_text(), re.MULTILINE))
    assert runtimes == {python_version}, (
        f"template.yaml runs python {sorted(runtimes)}, the lock is for {python_version}"
    )
    platform = option(command, "--python-platform") or ""
    arch, _, glibc = platform.partition("-")
    assert arch == "aarch64" and glibc.startswith("manylinux"), f"--python-platform {platform} is not arm64 Linux"
    assert f"{glibc}_{arch}" in makefile_variable("LAMBDA_PLATFORMS").split()


def test_build_installs_only_the_locked_files() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^build-PipelineFunction:\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has no build-PipelineFunction recipe"
    pip = recipe.group(1).replace("\\\n", " ")
    for flag in ("--require-hashes", "--no-deps", "-r requirements.txt", "--python-version $(LAMBDA_PYTHON)"):
        assert flag in pip, f"build-PipelineFunction's pip runs without {flag}"


# ------------------------------------------------------------------- the check fails on a broken lock


def drop_block(text: str, name: str) -> str:
    """The lock without `name`'s entry (its pin, hashes and annotations)."""
    return re.sub(rf"^{name}(\[[^\]]*\])?==.*?(?=^\S)", "", text, count=1, flags=re.MULTILINE | re.DOTALL)


STRAY = "requests==2.32.3 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via somebody-else\n"


@pytest.mark.parametrize(
    ("lock_edit", "dependencies_edit", "expected"),
    [
        pytest.param(
            lambda t: re.sub(r"^boto3==\S+", "boto3>=1.34", t, flags=re.MULTILINE),
            None,
            "boto3>=1.34 is not pinned",
            id="loosened-pin",
        ),
        pytest.param(lambda t: drop_block(t, "paramiko"), None, "the lock has no pin of paramiko", id="missing-pin"),
        pytest.param(
            lambda t: re.sub(r"^(pydantic==\S+) \\\n(?:\s+--hash=\S+ ?\\?\n)+", r"\1\n", t, flags=re.MULTILINE),
            None,
            "pydantic carries no --hash",
            id="unhashed-pin",
        ),
        pytest.param(None, lambda d: [*d, "requests>=2.31"], "the lock has no pin of requests", id="new-dependency"),
        pytest.param(
            None,
            lambda d: [re.sub(r"^boto3\b.*", "boto3>=99", x) for x in d],
            "requires boto3>=99; the lock pins boto3==",
            id="pin-outside-specifier",
        ),
        pytest.param(
            lambda t: t.replace("aws-lambda-powertools[tracer]==", "aws-lambda-powertools=="),
            None,
            "without ['tracer']",
            id="extra-dropped",
        ),
        pytest.param(lambda t: t + STRAY, None, "nothing in pyproject.toml requires it", id="stray-package"),
        pytest.param(
            None,
            lambda d: [x for x in d if not x.startswith("pydantic")],
            "pydantic is locked as a requirement of pyproject.toml, which no longer has it",
            id="dependency-removed",
        ),
    ],
)
def test_check_reports_a_lock_that_disagrees_with_pyproject(
    lock_edit: Callable[[str], str] | None, dependencies_edit: Callable[[list[str]], list[str]] | None, expected: str
) -> None:
    text = LOCK.read_text()
    dependencies = project_dependencies()
    broken_text = lock_edit(text) if lock_edit else text
    assert broken_text != text or dependencies_edit, "the edit changed nothing: the lock no longer looks as expected"
    broken_dependencies = dependencies_edit(dependencies) if dependencies_edit else dependencies
    lock = parse_lock(broken_text)
    python_version = option(compile_command(lock), "--python-version") or ""
    problems = lock_problems(lock, broken_dependencies, python_version)
    assert any(expected in problem for problem in problems), problems
