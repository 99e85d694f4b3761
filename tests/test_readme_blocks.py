"""Every code block of the README is exercised, so no example can drift from the code.

Each fenced block of README.md is one test, by language:

* ``python``: run as a script in a fresh project (this repository's pyproject.toml and
  suites/), in a child process where the network is impossible (``sitecustomize`` refuses
  every host but this machine) and every provider's base URL points at a local fake server
  speaking OpenAI, Azure, Anthropic, Gemini and Cohere, with fake keys. A block that defines
  ``test_`` functions is run as a pytest file instead.
* ``yaml``: a suite is loaded with ``harness.suites.load_suite``; an ``assert:`` fragment is
  validated check by check with ``validate_check_spec``.
* ``toml``: loaded with the config loader (as ``pyproject.toml`` when it has ``[tool.harness]``).
* ``sh``/``bash``: each command is run for real when that is cheap (``harness init``,
  ``pytest`` in a starter project or on the example suites, ``harness checks|power``,
  ``python -c``), else checked: ``harness`` arguments parse, ``pytest`` options exist in
  ``pytest --help``, pip extras exist in pyproject.toml, named files exist.

A block that cannot run here says why in an HTML comment right before it,
``<!-- not run: reason -->``; ``NOT_RUN`` lists them, so skipping stays visible and rare.
docs/checks.md's examples are generated from the code and run by test_checks_reference.py;
its YAML and TOML blocks are loaded here too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import harness.checks  # noqa: F401 - registers the built-in checks
from harness.checks import validate_check_spec
from harness.cli import _cache_parser, _parser
from harness.config import load_config
from harness.suites import load_suite
from tests.helpers.local_server import LocalServer, Reply, Request, chat_body

ROOT = Path(__file__).resolve().parent.parent
REPLY = "Paris. Hello!"
FAKE_KEY = "sk-readme-test-0000000000"

NOT_RUN = {
    ("README.md", "typescript"): "TypeScript: needs Node and the openai package",
}
"""The blocks that are not run, by file and language, with the reason their comment gives."""

_BLOCK_RE = re.compile(
    r"(?:<!-- not run: (?P<skip>.*?) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.S | re.M
)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    file: str
    line: int
    lang: str
    body: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}:{self.lang}"


def blocks(name: str) -> list[Block]:
    """Every fenced block of ``name`` (a path under the repository)."""
    text = (ROOT / name).read_text(encoding="utf-8")
    out = []
    for m in _BLOCK_RE.finditer(text):
        line = text.count("\n", 0, m.start("lang")) + 1
        out.append(Block(name, line, m.group("lang"), m.group("body"), m.group("skip")))
    return out


README = blocks("README.md")


# --- the sandbox: a project copy, a fake provider server, no network ------------------------

GUARD = """
import os, socket

_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_LOCAL = {"127.0.0.1", "localhost", "::1"}
_FAKE_PORT = int(os.environ["README_FAKE_PORT"])


def getaddrinfo(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in _LOCAL and name is not None:
        raise OSError(f"README test: no network (asked for {name})")
    if str(port) == "11434":  # Ollama's default port: the fake server answers for it
        port = _FAKE_PORT
    return _getaddrinfo(host, port, *args, **kwargs)


def connect(self, address):
    if isinstance(address, tuple) and address[0] not in _LOCAL:
        raise OSError(f"README test: no network (connect to {address[0]})")
    return _connect(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect
"""


def _answer(request: Request) -> Reply:
    """A fake provider: the same reply in OpenAI's, Anthropic's, Gemini's or Cohere's shape."""
    path = request.path.split("?", 1)[0]
    if path.endswith("/chat/completions"):
        return Reply(body=chat_body(REPLY))
    if path.endswith("/messages"):
        usage = {"input_tokens": 5, "output_tokens": 3}
        return Reply(
            body={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [{"type": "text", "text": REPLY}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
        )
    if ":generateContent" in path:
        return Reply(
            body={
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": REPLY}]},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": 5,
                    "candidatesTokenCount": 3,
                    "totalTokenCount": 8,
                },
            }
        )
    if path.endswith("/v2/chat"):
        return Reply(
            body={
                "id": "c1",
                "finish_reason": "COMPLETE",
                "message": {"role": "assistant", "content": [{"type": "text", "text": REPLY}]},
                "usage": {
                    "tokens": {"input_tokens": 5, "output_tokens": 3},
                    "billed_units": {"input_tokens": 5, "output_tokens": 3},
                },
            }
        )
    return Reply(status=404, body={"error": {"message": f"no route {path}"}})


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[LocalServer]:
    with LocalServer(_answer) as server:
        yield server


@pytest.fixture
def sandbox(
    tmp_path: Path, fake_provider: LocalServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """A fresh project (pyproject.toml and suites/) and the environment of its child processes."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(ROOT / "suites", project / "suites")
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    url = fake_provider.url
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(guard), str(ROOT)]),
        README_FAKE_PORT=str(fake_provider.port),
        OPENAI_BASE_URL=f"{url}/v1",
        ANTHROPIC_BASE_URL=url,
        GOOGLE_GEMINI_BASE_URL=url,
        CO_API_URL=url,
        AZURE_OPENAI_ENDPOINT=url,
        **{
            name: FAKE_KEY
            for name in (
                "OPENAI_API_KEY",
                "ANTHROPIC_API_KEY",
                "GEMINI_API_KEY",
                "CO_API_KEY",
                "AZURE_OPENAI_API_KEY",
            )
        },
    )
    env.pop("GITHUB_STEP_SUMMARY", None)
    return project, env


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# --- per language ---------------------------------------------------------------------------


def _run_python(code: str, project: Path, env: dict[str, str]) -> str:
    if re.search(r"^def test_", code, re.M):
        (project / "test_readme_example.py").write_text(code, encoding="utf-8")
        done = _run(
            [
                sys.executable,
                "-m",
                "pytest",
                "test_readme_example.py",
                "-p",
                "no:randomly",
                "-p",
                "no:cacheprovider",
                "--harness-models",
                "openai/gpt-4o-mini",
                "-o",
                "filterwarnings=",
                "-o",
                "addopts=",
            ],
            project,
            env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"\b[2-9] passed", done.stdout), done.stdout
        return done.stdout
    script = project / "readme_example.py"
    script.write_text(code, encoding="utf-8")
    done = _run([sys.executable, str(script)], project, env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _check_yaml(text: str, where: Path) -> None:
    data = yaml.safe_load(text)
    assert isinstance(data, dict), "a YAML block is a suite or an assert: fragment"
    if data.keys() & {"prompt", "prompts", "messages"}:
        path = where / "suites" / "readme_example.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        suite = load_suite(path)
        assert suite.cases, "the suite has no case"
        return
    assert set(data) == {"assert"}, f"unknown fragment with keys {sorted(data)}"
    for spec in data["assert"]:
        validate_check_spec(spec)


def _check_toml(text: str, where: Path) -> None:
    pyproject = re.search(r"^\[tool\.harness", text, re.M)
    name = "pyproject.toml" if pyproject else "harness.toml"
    path = where / "toml" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.models or config.embedding_model or config.cache is not None, text


# --- sh ---------------------------------------------------------------------------------------

_SEPARATORS = {"&&", "||", "|", ";", "&"}


def commands(text: str) -> Iterator[list[str]]:
    """The commands of a shell block: continuations joined, comments dropped, split at
    newlines, ``&&``, ``||``, ``|``, ``;`` and ``&`` (quotes may span lines)."""
    lexer = shlex.shlex(text.replace("\\\n", " "), posix=True, punctuation_chars=";&|\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""  # shlex's comments would swallow the newline that ends them
    command: list[str] = []
    comment = False
    for token in lexer:
        if set(token) <= set(";&|\n"):
            comment = comment and "\n" not in token
            if command:
                yield command
            command = []
        elif comment or token.startswith("#"):
            comment = True
        else:
            command.append(token)
    if command:
        yield command


@pytest.fixture(scope="module")
def pytest_options(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The long options ``pytest --help`` lists with this project's plugins."""
    where = tmp_path_factory.mktemp("help")
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    done = _run([sys.executable, "-m", "pytest", "--help"], where, dict(os.environ))
    assert done.returncode == 0, done.stderr
    return set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", done.stdout))


def _extras() -> tuple[str, set[str]]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["name"], set(project["optional-dependencies"])


def _check_pip(args: list[str]) -> None:
    assert args[:1] == ["install"], args
    name, extras = _extras()
    for arg in args[1:]:
        if arg.startswith("-"):
            continue
        m = re.fullmatch(r"(\.|[\w.-]+)(?:\[([\w,]+)\])?", arg)
        assert m, f"cannot read the requirement {arg!r}"
        assert m.group(1) in {".", name}, f"{arg!r}: the package is {name}"
        for extra in filter(None, (m.group(2) or "").split(",")):
            assert extra in extras, f"{arg!r}: no extra {extra!r} (have {sorted(extras)})"


_RUN_HARNESS = {"init", "checks", "power", "--version"}
"""``harness`` commands cheap enough to run for real; the others are parsed."""


def _run_sh(text: str, project: Path, env: dict[str, str], options: set[str]) -> list[str]:
    """Exercise a shell block; returns what was run for real (the others were checked)."""
    cwd = project
    env = dict(env)
    ran: list[str] = []
    for command in commands(text):
        inline: dict[str, str] = {}
        while command and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", command[0]):
            key, _, value = command.pop(0).partition("=")
            inline[key] = value
        if not command:
            env.update(inline)
            continue
        prog, args = Path(command[0]).name, command[1:]
        # `KEY=... command`: the fake key; base URLs stay the fake server's
        here = {**env, **{k: FAKE_KEY for k in inline if k.endswith("_API_KEY")}}
        if prog == "export":
            for assignment in args:
                key, _, value = assignment.partition("=")
                env[key] = value
        elif prog == "mkdir":
            for arg in args:
                if not arg.startswith("-"):
                    (cwd / arg).mkdir(parents=True, exist_ok=True)
        elif prog == "cd":
            cwd = cwd / args[0]
            assert cwd.is_dir(), f"cd {args[0]}: no such directory"
        elif prog in {"python3", "python"} and args[:2] == ["-m", "venv"]:
            pass  # the virtualenv: the tests run in one already
        elif prog == "pip":
            _check_pip(args)
        elif prog == "python" and args[:1] == ["-c"]:
            _run_python(args[1], cwd, here)
            ran.append(" ".join([prog, *args]))
        elif prog == "python":
            assert (ROOT / args[0]).is_file(), f"{args[0]} does not exist"
        elif prog == "harness":
            if args[:1] and args[0] in _RUN_HARNESS:
                done = _run([sys.executable, "-m", "harness.cli", *args], cwd, here)
                assert done.returncode == 0, done.stdout + done.stderr
                ran.append(" ".join([prog, *args]))
            else:
                parser = _cache_parser() if args[:1] == ["cache"] else _parser()
                try:
                    parser.parse_args(args[1:] if args[:1] == ["cache"] else args)
                except SystemExit:
                    pytest.fail(f"harness does not accept: {' '.join(command)}")
        elif prog == "pytest":
            for arg in args:
                if arg.startswith("--"):
                    assert arg.split("=", 1)[0] in options, f"pytest has no option {arg}"
            paths = [a for a in args if "/" in a or a.endswith((".json", ".yaml"))]
            starter = (cwd / "pytest.ini").is_file()
            if starter or (paths and all((cwd / p).exists() for p in paths)):
                done = _run([sys.executable, "-m", "pytest", "-p", "no:randomly", *args], cwd, here)
                assert done.returncode == 0, done.stdout[-3000:] + done.stderr
                ran.append(" ".join([prog, *args]))
        elif prog in {"ruff", "mypy"}:
            for arg in args:
                if not arg.startswith("-") and arg not in {"check", "format"}:
                    assert (ROOT / arg).exists(), f"{prog}: {arg} does not exist"
        elif prog == "curl":
            pass  # tests/test_readme.py runs the serve example's curl against harness serve
        else:
            pytest.fail(
                f"no way to exercise the command {command[0]!r}; add one or mark the "
                "block <!-- not run: reason -->"
            )
    return ran


# --- the tests --------------------------------------------------------------------------------


def test_every_block_has_a_known_language_and_skips_are_listed() -> None:
    skipped = {(b.file, b.lang): b.skip for b in README if b.skip is not None}
    assert skipped == NOT_RUN
    for block in README:
        assert block.lang in {"python", "yaml", "toml", "sh", "bash"} or block.skip, block.id


@pytest.mark.parametrize("block", [b for b in README if b.skip is None], ids=lambda b: b.id)
def test_readme_block_runs_as_written(
    block: Block, sandbox: tuple[Path, dict[str, str]], pytest_options: set[str]
) -> None:
    project, env = sandbox
    if block.lang == "python":
        _run_python(block.body, project, env)
    elif block.lang == "yaml":
        _check_yaml(block.body, project)
    elif block.lang == "toml":
        _check_toml(block.body, project)
    else:
        ran = _run_sh(block.body, project, env, pytest_options)
        if "harness init" in block.body:  # the walkthrough runs for real, start to end
            assert ran == ["harness init", "pytest"], ran
        if "--harness-gate rate" in block.body:  # so does the main job
            assert any(r.startswith("pytest suites/") for r in ran), ran


@pytest.mark.parametrize(
    "block",
    [b for b in blocks("docs/checks.md") if b.lang in {"yaml", "toml"}],
    ids=lambda b: b.id,
)
def test_docs_checks_md_yaml_and_toml_blocks_load(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.checks.reference import EXAMPLE_FILES

    # the modules the python: examples name, importable as they would be in a project
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "mypkg" / "checks.py").write_text("def is_haiku(ctx):\n    return True\n")
    (tmp_path / "my_checks.py").write_text(
        EXAMPLE_FILES["my_checks.py"].replace(
            'register_check("cheap_and_quick", cheap_and_quick)',
            'register_check("cheap_and_quick", cheap_and_quick, replace=True)',
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        if block.lang == "yaml":
            _check_yaml(block.body, tmp_path)
        else:
            _check_toml(block.body, tmp_path)
    finally:
        from harness.checks.registry import _PUBLIC, _REGISTRY

        _REGISTRY.pop("cheap_and_quick", None)
        _PUBLIC.pop("cheap_and_quick", None)
        for name in ("my_checks", "mypkg", "mypkg.checks"):
            sys.modules.pop(name, None)


def test_the_shell_reader_splits_commands_as_the_shell_does() -> None:
    text = textwrap.dedent(
        """\
        A=1 B=2 prog --x "a b" && other -y # a comment
        long \\
          continued &
        # a line of comment
        curl -d '{"a": 1,
                  "b": 2}' | head -1
        """
    )
    assert list(commands(text)) == [
        ["A=1", "B=2", "prog", "--x", "a b"],
        ["other", "-y"],
        ["long", "continued"],
        ["curl", "-d", '{"a": 1,\n          "b": 2}'],
        ["head", "-1"],
    ]


def test_the_sandbox_refuses_the_network(sandbox: tuple[Path, dict[str, str]]) -> None:
    project, env = sandbox
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('example.com', 443), timeout=5)\n"
        "except OSError as exc:\n"
        "    print('refused:', exc)\n"
    )
    assert "README test: no network" in _run_python(code, project, env)
