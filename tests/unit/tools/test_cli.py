"""``okta-personal-lake``: one command, its subcommands listed by --help, each handed the rest of the line."""

from __future__ import annotations

import pytest

from tools.cli import COMMANDS, main


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exited:  # argparse's own answers: --help, a missing or unknown command
        return exited.code


def test_help_lists_every_command(capsys):
    assert exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: okta-personal-lake")
    words = " ".join(out.split())  # argparse wraps the summaries to the terminal's width
    for name in ("run", "coverage", "maintain", "report"):
        assert f"{name} {COMMANDS[name]}" in words


@pytest.mark.parametrize("argv", [[], ["nope"], ["--output=lake"]])
def test_a_missing_or_unknown_command_exits_2(argv, capsys):
    assert exit_code(argv) == 2
    assert "okta-personal-lake: error:" in capsys.readouterr().err


def test_a_command_gets_the_rest_of_the_line_and_its_help(tmp_path, capsys):
    assert exit_code(["coverage", f"--output={tmp_path}"]) == 0
    assert f"coverage of {tmp_path}" in capsys.readouterr().out
    assert exit_code(["coverage", f"--output={tmp_path}", "--since=2h"]) == 1  # its own exit code: nothing covered
    assert "(no run of the org is recorded)" in capsys.readouterr().out
    assert exit_code(["coverage", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: okta-personal-lake coverage")
    assert exit_code(["maintain", "--no_such_flag=1", "--iceberg_table=okta.events"]) == 2
    assert "error: unknown option --no_such_flag" in capsys.readouterr().err
    assert exit_code(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path}: no Parquet files yet"
