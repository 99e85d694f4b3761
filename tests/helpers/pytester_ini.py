"""The pytest settings of a pytester project that runs the harness plugin."""

PYTESTER_INI = """\
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
addopts = "-p no:hypothesispytest -p no:randomly"
filterwarnings = ["ignore::pytest.PytestAssertRewriteWarning"]
"""
"""``[tool.pytest.ini_options]`` for a pyproject.toml: no hypothesis or randomly plugin in
the inner run, no warning about rewriting modules imported before it."""
