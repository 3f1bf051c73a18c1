"""train.conditions: one table of room conditions and one ``--conditions`` type, the same
rules in ``ser-train`` and ``ser-bench``; importable without librosa or SciPy."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from benchmarks.cli import cli as bench_cli
from train.cli import main as train_cli
from train.conditions import CONDITIONS, DESCRIPTIONS, NAMES, ConditionsType, parse

COMMANDS = {"ser-train": train_cli, "ser-bench": bench_cli}


def option(command: click.Command) -> click.Option:
    return next(p for p in command.params if p.name == "conditions")


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize(("text", "chosen"), [
    ("all", NAMES), ("none", ()), ("", ()), ("noise,quiet", ("quiet", "noise")),
    (" Reverb , combined ", ("reverb", "combined"))])
def test_both_commands_parse_conditions_by_the_same_rules(name, text, chosen):
    opt = option(COMMANDS[name])
    assert isinstance(opt.type, ConditionsType)
    assert opt.type_cast_value(click.Context(COMMANDS[name]), text) == chosen
    assert opt.type_cast_value(click.Context(COMMANDS[name]), opt.default) == NAMES


@pytest.mark.parametrize("name", COMMANDS)
def test_an_unknown_condition_is_bad_usage_in_both(name, tmp_path):
    result = CliRunner().invoke(COMMANDS[name], ["--data", str(tmp_path), "--conditions",
                                                 "quiet,windy"])
    assert result.exit_code == 2
    assert "windy: choose from quiet, reverb, noise, combined, all or none" in result.output


def test_names_and_descriptions_are_one_table():
    assert tuple(CONDITIONS) == NAMES and set(DESCRIPTIONS) == set(NAMES)
    assert all(c.name == n for n, c in CONDITIONS.items())
    with pytest.raises(ValueError, match="all or none"):
        parse("all,quiet")


def test_the_names_import_without_librosa_or_scipy():
    """ser-bench runs without the train extra: the names and the option type need neither."""
    code = ("import sys\n"
            "sys.modules.update(librosa=None, scipy=None)\n"
            "import benchmarks.cli, train.conditions\n"
            "print(','.join(train.conditions.parse('all')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ",".join(NAMES)
