"""The commands the README and the pages under docs/ show a reader: each is a command mlp has,
with options it takes (a choice among the ones it offers) and config keys that exist, so that
no page teaches a command that fails. Fenced shell blocks and inline `mlp …` alike."""

import re
import shlex
from pathlib import Path

import click
import pytest
from conftest import ROOT

from mlpcli.cli import main
from mlpcli.config import Config, flat_items

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
KEYS = set(flat_items(Config()))


def shown_commands(page: Path) -> list[list[str]]:
    """The `mlp` command lines of `page`, as words after `mlp`: from its shell blocks (lines
    continued with a backslash joined; `a && b`, `a; b` and `a | b` taken apart), the `$ mlp …`
    lines of its output blocks and its inline code; a line with an option in brackets or an ellipsis
    is a pattern, not a command."""
    text = page.read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|powershell)\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"^\$ (mlp .+)$", text, re.M)  # a command shown with its output
    lines += re.findall(r"`(mlp [^`]+)`", text)
    found = []
    for line in lines:
        for part in re.split(r"&&|;|\|", line):
            words = shlex.split(part.strip().removeprefix("$ "))
            while words and re.fullmatch(r"\w+=\S*", words[0]):  # PGPASSWORD=… mlp …
                words.pop(0)
            if words[:1] == ["mlp"] and not any(re.search(r"^\[|…|\.\.\.", word) for word in words):
                found.append(words[1:])
    return found


def problems(words: list[str]) -> list[str]:
    """What in `mlp WORDS` mlp would refuse: an unknown command or option, a choice it does not
    offer, a --set key that is not a config key."""
    if not words or words[0].startswith("-"):
        return []
    command = main.commands.get(words[0])
    if command is None:
        return [f"no command {words[0]!r}"]
    options = {name: param for param in command.params for name in param.opts + param.secondary_opts}
    found = []
    for word, value in zip(words[1:], [*words[2:], None]):
        name = word.split("=")[0]
        if not word.startswith("-") or name in ("-h", "--help"):
            continue
        param = options.get(name)
        if param is None:
            found.append(f"{words[0]}: no option {name}")
        elif isinstance(param.type, click.Choice) and value not in param.type.choices:
            found.append(f"{words[0]} {name}: {value!r} is not one of {param.type.choices}")
        elif name == "--set" and value.split("=")[0] not in KEYS:
            found.append(f"{words[0]} --set: {value.split('=')[0]!r} is not a config key")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_command_a_page_shows_is_one_mlp_takes(page):
    commands = shown_commands(page)
    assert [problem for words in commands for problem in problems(words)] == []


def test_the_check_sees_what_it_is_for(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Run `mlp train --epochs 3` or `mlp trian`.\n\n```bash\npip install -e . && mlp eval runs/x \\\n"
        "  --split dev\nPGPASSWORD=x mlp train --set train.lr=0.1 --set train.lrr=1\n```\n"
        "A pattern: `mlp eval RUN [--split S]`.\n",
        encoding="utf-8",
    )
    found = [problem for words in shown_commands(page) for problem in problems(words)]
    assert found == [
        "eval --split: 'dev' is not one of ('test', 'validation', 'train')",
        "train --set: 'train.lrr' is not a config key",
        "train: no option --epochs",
        "no command 'trian'",
    ]
