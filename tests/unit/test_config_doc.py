"""docs/configuration.md's option reference is generated from the option table: it must be current."""

from pathlib import Path

from fastwsgi import config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_is_generated_from_the_table():
    current = DOC.read_text(encoding="utf-8")
    assert config.sync_markdown(current) == current, (
        "docs/configuration.md is out of date: run `python -m fastwsgi.config docs/configuration.md`")


def test_every_option_is_documented():
    current = DOC.read_text(encoding="utf-8")
    for option in config.OPTIONS:
        assert f"`{option.cli_flags[-1] if option.cli else option.name}`" in current


def test_render_markdown_escapes_table_separators():
    for line in config.render_markdown().splitlines():
        if line.startswith("| `"):
            assert line.count(" | ") == 4, line
