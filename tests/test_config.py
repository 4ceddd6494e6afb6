"""The settings layers: flags > MEMDEX_* environment > ROOT/.memdex/config.toml > user file > defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import RecordingEmbedder, write

from indexer import open_index
from indexer.cli.app import EXIT_USAGE, cli
from indexer.config.resolve import load_configuration
from indexer.errors import ConfigError


@pytest.fixture
def layered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A root with a root file and a user file that set different values."""
    root = tmp_path / "memory"
    write(root, "MEMORY.md", "# Memory\n")
    user = tmp_path / "xdg" / "memdex" / "config.toml"
    write(user, "", 'model = "user-model"\nsearch_limit = 7\ndaily_folders = ["journal"]\n')
    write(root, ".memdex/config.toml", 'model = "root-model"\nsearch_limit = 9\n')
    monkeypatch.delenv("MEMDEX_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # platformdirs' user config folder
    return root, user


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    write(tmp_path / "m", "MEMORY.md", "")
    found = load_configuration({"root": str(tmp_path / "m")})
    assert found.settings.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert found.settings.daily_folders == ("daily", "memory") and found.settings.search_limit is None
    assert found.settings.search_budget_lines == 50
    assert found.values["model"].source == "default" and found.values["root"].source == "flag --root"
    assert found.settings.index_path == (tmp_path / "m").resolve() / ".memdex" / "index.db"


def test_user_file_beats_defaults(layered: tuple[Path, Path]) -> None:
    root, user = layered
    (root / ".memdex" / "config.toml").unlink()
    found = load_configuration({"root": str(root)})
    assert found.user_file == user  # found through XDG_CONFIG_HOME
    assert found.settings.model == "user-model" and found.settings.daily_folders == ("journal",)
    assert found.values["model"].source == f"user file {user}"
    assert found.values["search_mode"].source == "default"


def test_root_file_beats_user_file(layered: tuple[Path, Path]) -> None:
    root, user = layered
    found = load_configuration({"root": str(root)})
    assert found.settings.model == "root-model" and found.settings.search_limit == 9
    assert found.values["model"].source == f"root file {root / '.memdex' / 'config.toml'}"
    assert found.settings.daily_folders == ("journal",)  # not in the root file: the user file's


def test_environment_beats_root_file(layered: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = layered
    monkeypatch.setenv("MEMDEX_MODEL", "env-model")
    monkeypatch.setenv("MEMDEX_DAILY_FOLDERS", "logs, memory")
    found = load_configuration({"root": str(root)})
    assert found.settings.model == "env-model" and found.values["model"].source == "env MEMDEX_MODEL"
    assert found.settings.daily_folders == ("logs", "memory")
    assert found.environment()["MEMDEX_MODEL"] == "env-model"  # what a service definition carries


def test_flags_beat_environment(layered: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = layered
    monkeypatch.setenv("MEMDEX_MODEL", "env-model")
    monkeypatch.setenv("MEMDEX_ROOT", "/nowhere")
    found = load_configuration({"root": str(root), "model": "flag-model"})
    assert found.settings.model == "flag-model" and found.values["model"].source == "flag --model"
    assert found.settings.root == root.resolve()


def test_root_from_the_environment_or_the_user_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "memory"
    write(root, "MEMORY.md", "")
    user = tmp_path / "user.toml"
    write(tmp_path, "user.toml", f'root = "{root}"\ndb = "elsewhere/index.db"\n')
    monkeypatch.setenv("MEMDEX_CONFIG", str(user))
    found = load_configuration({})
    assert found.settings.root == root.resolve() and found.values["root"].source == f"user file {user}"
    assert found.settings.index_path == root.resolve() / "elsewhere" / "index.db"  # relative to the root
    monkeypatch.setenv("MEMDEX_ROOT", str(tmp_path))
    assert load_configuration({}).settings.root == tmp_path.resolve()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("modle = 'x'\n", "unknown setting 'modle'"),
        ("search_limit = 0\n", "at least 1"),
        ("search_mode = 'fuzzy'\n", "expected one of"),
        ("sqlite_vec = 'maybe'\n", "true or false"),
        ("daily_folders = ['../up']\n", "relative to the memory root"),
        ("root = '/x'\n", "'root' can only be set"),
        ("model = \n", "not valid TOML"),
    ],
)
def test_bad_root_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    root = tmp_path / "memory"
    write(root, ".memdex/config.toml", text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_configuration({"root": str(root)})
    assert "\n" not in str(caught.value)


def test_config_command_shows_values_and_sources(layered: tuple[Path, Path]) -> None:
    root, user = layered
    runner = CliRunner(env={"MEMDEX_SEARCH_MODE": "keyword"})
    result = runner.invoke(cli, ["--root", str(root), "config", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["settings"]["model"] == {"value": "root-model", "source": f"root file {root / '.memdex' / 'config.toml'}"}
    assert shown["settings"]["search_mode"] == {"value": "keyword", "source": "env MEMDEX_SEARCH_MODE"}
    assert shown["settings"]["daily_folders"]["value"] == ["journal"]
    assert shown["files"]["user"] == {"path": str(user), "exists": True}
    text = runner.invoke(cli, ["--root", str(root), "config"])
    assert text.exit_code == 0 and "root-model  (root file" in text.output


def test_cli_search_uses_the_configured_defaults(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = tmp_path / "memory"
    for n in range(12):
        write(root, f"notes/n{n}.md", f"# Note {n}\n\nbadger sett number {n}\n")
    write(root, ".memdex/config.toml", "search_limit = 3\nsearch_mode = 'keyword'\n")
    with open_index(load_configuration({"root": str(root)}).settings, write=True, embedder=embedder) as index:
        index.sync()
    runner = CliRunner()
    result = runner.invoke(cli, ["--root", str(root), "search", "badger", "--json"])  # keyword: no model loaded
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 3
    more = runner.invoke(cli, ["--root", str(root), "search", "badger", "--json", "--limit", "5"])
    assert len(json.loads(more.output)) == 5


def test_service_definitions_carry_the_environment_settings(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    write(root, "MEMORY.md", "")
    runner = CliRunner(env={"MEMDEX_DAILY_FOLDERS": "journal"})
    unit = runner.invoke(cli, ["--root", str(root), "watch", "--print-service", "systemd"])
    assert unit.exit_code == 0, unit.output
    assert "Environment=MEMDEX_DAILY_FOLDERS=journal" in unit.output
    plist = runner.invoke(cli, ["--root", str(root), "watch", "--print-service", "launchd"])
    assert "<key>MEMDEX_DAILY_FOLDERS</key>" in plist.output


def test_usage_errors_exit_64_unlike_checks_verdicts(tmp_path: Path) -> None:
    runner = CliRunner()
    assert EXIT_USAGE == 64
    assert runner.invoke(cli, ["--no-such-option"]).exit_code == EXIT_USAGE
    assert runner.invoke(cli, ["search"]).exit_code == EXIT_USAGE  # missing argument
    assert runner.invoke(cli, ["search", "x", "--limit", "0"]).exit_code == EXIT_USAGE
    assert runner.invoke(cli, ["search", "x", "--kind", "diary"]).exit_code == EXIT_USAGE
    assert runner.invoke(cli, ["nosuchcommand"]).exit_code == EXIT_USAGE
    assert runner.invoke(cli, ["--root", str(tmp_path / "missing"), "status"]).exit_code == 1
    assert runner.invoke(cli, ["--help"]).exit_code == 0
