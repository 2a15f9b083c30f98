"""The README and docs/ stay true to the code: every relative link (and its anchor) resolves,
every ``--option`` of a ``python -m study.X`` command in a code block exists in that
command's parser, every such command's module exists, and the counts the pages state (bad
inputs, search spaces, learner families) are the code's."""

from __future__ import annotations

import functools
import re
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
BLOCK = re.compile(r"^```(?:bash|text|sh|console)?\n(.*?)^```", re.S | re.M)
COMMAND = re.compile(r"python -m (study(?:\.[a-z_]+)?)\b")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = BLOCK.sub("", page.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_the_pages_exist_and_the_readme_is_short():
    assert (ROOT / "docs").is_dir() and len(PAGES) >= 10
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for m in LINK.finditer(BLOCK.sub("", page.read_text())):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def _commands(text: str) -> list[tuple[str, list[str]]]:
    """Each ``python -m study.X ...`` line of the code blocks (continuations joined): the
    module and the options it names."""
    out = []
    for block in BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            if line.lstrip().startswith(("error:", "#", "[")):
                continue
            for m in COMMAND.finditer(line):
                rest = line[m.end() :].split("#")[0].split("&&")[0].split("|")[0]
                rest = COMMAND.split(rest)[0]  # up to the next command on the line
                out.append((m.group(1), re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest)))
    return out


@cache
@functools.cache  # one --help per command, not one per command shown
def _options(module: str) -> frozenset[str]:
    """The options ``python -m MODULE --help`` lists (its ``main`` asked in this process)."""
    import contextlib
    import importlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        importlib.import_module(module).main(["--help"])
    assert done.value.code in (0, None), f"python -m {module} --help: exit {done.value.code}"
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.getvalue()))


def test_every_option_shown_exists_in_its_commands_parser():
    wrong = []
    seen = 0
    for page in PAGES:
        for module, options in _commands(page.read_text()):
            if module in ("study", "study.bench.fingerprint"):
                module = "study.run" if module == "study" else module
            known = _options(module)
            seen += 1
            wrong += [f"{page.name}: python -m {module} {o}" for o in options if o not in known]
    assert seen >= 40, seen  # the pages do show commands
    assert not wrong, wrong


def test_the_checker_catches_an_option_a_command_lacks():
    ((module, options),) = _commands(
        "```bash\npython -m study.launch --space hybrid --nope 3\n```\n"
    )
    assert module == "study.launch" and "--nope" in options and "--nope" not in _options(module)
    assert "--space" in _options(module)


def test_the_counts_the_pages_state_are_the_codes():
    sys.path.insert(0, str(ROOT / "tests"))
    from test_bad_input import CASES

    from learners import FAMILIES
    from search_spaces import SPACES

    text = "\n".join(p.read_text() for p in PAGES if p.name != "CHANGELOG.md")
    for n in re.findall(r"([\d,]+) (?:such cases|bad inputs)", text):
        assert int(n.replace(",", "")) == len(CASES), n
    for n in re.findall(r"one per family \((\d+):", text):
        assert int(n) == len(SPACES) == len(FAMILIES)
    words = {"eleven": 11, "ten": 10, "twelve": 12}
    for w in re.findall(r"\b(ten|eleven|twelve) (?:learner )?families", text):
        assert words[w] == len(FAMILIES), w
