"""``harness init``: the starter project written into a directory.

This module owns ``STARTER_FILES`` (each file's path in the project and its template under
``harness/templates/init/``, shipped as package data) and ``write_starter``, which writes
them all or, when any of them exists, none. The starter runs offline (``mock/`` models), so
``pytest`` passes in it at once.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["STARTER_FILES", "NEXT_STEPS", "StarterExistsError", "starter_text", "write_starter"]

STARTER_FILES: dict[str, str] = {
    "harness.toml": "harness.toml.tmpl",
    "pytest.ini": "pytest.ini.tmpl",
    "suites/starter.yaml": "starter.yaml.tmpl",
    "tests/test_starter.py": "test_starter.py.tmpl",
    ".github/workflows/llm-tests.yml": "llm-tests.yml.tmpl",
    "README.md": "README.md.tmpl",
}
"""Each starter file's path (relative to the project) and its template's name."""

NEXT_STEPS = """\
Next:
  pytest                        # the suite and the tests, offline, once per model
  open reports/report.html      # the comparison of the models
  edit harness.toml             # point the aliases at real models (keys from the environment)
"""
"""What ``harness init`` prints after the files it wrote."""


class StarterExistsError(Exception):
    """Some starter files exist already; nothing was written."""

    def __init__(self, existing: list[Path]) -> None:
        self.existing = existing
        names = ", ".join(str(p) for p in existing)
        super().__init__(f"refusing to overwrite existing file(s): {names}; nothing was written")


def starter_text(relative: str) -> str:
    """The content of starter file ``relative`` (a key of ``STARTER_FILES``)."""
    template = files("harness") / "templates" / "init" / STARTER_FILES[relative]
    return template.read_text(encoding="utf-8")


def write_starter(directory: str | Path = ".") -> list[Path]:
    """Write the starter project into ``directory`` (created if missing); the paths written.

    Raises:
        StarterExistsError: a starter file already exists there (nothing is written).
    """
    root = Path(directory)
    targets = {rel: root / rel for rel in STARTER_FILES}
    existing = [path for path in targets.values() if path.exists() or path.is_symlink()]
    if existing:
        raise StarterExistsError(existing)
    texts = {rel: starter_text(rel) for rel in STARTER_FILES}  # read all before writing any
    written: list[Path] = []
    for rel, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as out:  # "x": never replace a file
            out.write(texts[rel])
        written.append(path)
    return written
