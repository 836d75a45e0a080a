"""``eas-gym SUBCOMMAND --help``: every option described, each default shown once, as written."""

import argparse
import re

import pytest

from agents.cli import build_parser, main


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_has_a_description_and_one_plain_default(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # wrapped lines joined
    options = text.partition(" options: ")[2]
    parser = _subcommands()[command]
    for action in (a for a in parser._actions if a.option_strings):
        assert action.help, f"{command} {action.option_strings[-1]} has no description"
        # the help line: the option's usage, then at least one word of description
        usage = parser._get_formatter()._format_action_invocation(action)
        assert re.search(re.escape(usage) + r" \S", options), (command, usage, options)
    assert not re.search(r"\(default: [^)]*\) \(default:", text), text
    for noise in ("(default: None)", "(default: False)", "(default: [])"):
        assert noise not in text, (command, noise)
    assert not re.search(r"\(default: -?\d+\.0\)", text), text  # 300, not 300.0


def test_train_help_shows_the_paper_epochs_as_written(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 300)" in text and "(default: 0.1)" in text
    assert "(default: as the run; on for a net string)" in text
