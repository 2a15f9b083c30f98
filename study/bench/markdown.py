"""What a bench prints for the docs: its figures as a Markdown table, with the provenance
footer (``study.cli.provenance``: the command as typed, the machine, jax, the commit, the
date), also written to ``--markdown`` when given."""

from __future__ import annotations

import argparse
from pathlib import Path

from study.cli import provenance


def publish(args: argparse.Namespace, lines: list[str]) -> None:
    """Print ``lines`` (a table, and any notes after it) and the footer naming the command as
    typed; write the same to ``--markdown`` where asked."""
    text = "\n".join(lines) + "\n\n" + provenance(args.command_line) + "\n"
    print("\n" + text, end="")
    if getattr(args, "markdown", None):
        Path(args.markdown).write_text(text)
        print(f"wrote {args.markdown}")
