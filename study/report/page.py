"""The report's tables as text, CSV and one self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import html
import math
from pathlib import Path
from typing import Any

from study.engine.kinds import PREDICTION, TaskKind
from study.present.words import words
from study.report.load import (
    Trial,
    _normalised_columns,
)


def _sentence(text: str) -> str:
    """``text`` with its first letter capitalised and the rest as it is ("MSRE" stays)."""
    return text[:1].upper() + text[1:]


def _fmt(value: Any) -> str:
    """A table's number: 4 significant digits, thousands grouped from 1,000 on (a count, a
    speed), infinity as ``inf`` and a missing value as ``-``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "inf" if value == math.inf else "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _boot(r: dict[str, Any]) -> str:
    method = {"bca": "BCa", "percentile": "percentile"}.get(r.get("boot_method", ""), "")
    return f"[{_fmt(r['boot_low'])}, {_fmt(r['boot_high'])}]" + (f" {method}" if method else "")


def _diverged(r: dict[str, Any]) -> str:
    """``1/20 [0.1%, 25%]``: diverged seeds and the exact 95% interval of the rate."""
    if "diverged_low" not in r:
        return str(r.get("diverged_seeds", ""))
    return (f"{r['diverged_seeds']}/{r['seeds']} [{r['diverged_low']:.1%}, "
            f"{r['diverged_high']:.1%}]")  # fmt: skip


def table_text(rows: list[dict[str, Any]], name: str = "msre") -> str:
    """The summary as a text table: ± is the 95% Student-t half-width, [low, high] the 95%
    bootstrap interval of the mean of the compared value (its method named), both over the
    finite seeds; ``diverged``: diverged seeds of all and the exact 95% interval of the rate;
    ``same seeds`` is the pick's
    figure on the seeds that selected it, where it was evaluated on fresh ones."""
    cols, body = _summary_cells(rows, name)
    widths = [
        max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)),
             "  ".join("-" * w for w in widths)]  # fmt: skip
    for b in body:
        lines.append("  ".join(v.ljust(w) for v, w in zip(b, widths, strict=True)))
    return "\n".join(lines)


def table_markdown(rows: list[dict[str, Any]], name: str, command: str) -> str:
    """The summary as the docs paste it: what :func:`table_text` shows as a Markdown table,
    what its columns mean, and the provenance footer naming ``command``."""
    from study.cli import markdown_table, provenance

    text = markdown_table(*_summary_cells(rows, name))
    note = (
        f"`{name}`: mean ± 95% Student-t half-width over the finite seeds; bootstrap 95%: "
        "interval of the mean over the finite seeds, its method named; diverged: diverged "
        "seeds of all, with the exact (Clopper-Pearson) 95% interval of the rate; same seeds: "
        "the pick on the seeds that selected it."
    )
    return "\n".join(text) + "\n\n" + note + "\n\n" + provenance(command) + "\n"


def _summary_cells(rows: list[dict[str, Any]], name: str) -> tuple[tuple, list[list[str]]]:
    extra = ("normalised", "bootstrap 95%", "learned") if rows and "learned" in rows[0] else (
        ("bootstrap 95%",) if rows and "boot_low" in rows[0] else ())  # fmt: skip
    extra = (*extra, "diverged") if rows and "diverged_seeds" in rows[0] else extra
    same = ("same seeds",) if rows and "same_seeds_mean" in rows[0] else ()
    cols = ("learner", "params", "flops_per_step", "seeds", name, *extra, *same, "steps_per_s",
            "configuration")  # fmt: skip
    body = []
    for r in rows:
        msre = f"{r[f'{name}_mean']:.4g} ± {_fmt(r[f'{name}_ci95'])}"
        boot = [_boot(r)] if "bootstrap 95%" in extra else []
        norm = ([f"{_fmt(r['nmsre_mean'])} ± {_fmt(r['nmsre_ci95'])}", _boot(r), r["learned"]]
                if "learned" in extra else boot)  # fmt: skip
        norm += [_diverged(r)] if "diverged" in extra else []
        seen = ([f"{_fmt(r['same_seeds_mean'])} ± {_fmt(r['same_seeds_ci95'])} "
                 f"({r['same_seeds_n']})"] if same else [])  # fmt: skip
        body.append([r["learner"], _fmt(r["params"]), _fmt(r["flops_per_step"]), str(r["seeds"]),
                     msre, *norm, *seen, _fmt(r["steps_per_s"]), r["configuration"]])  # fmt: skip
    return cols, body


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def trial_rows(trials: list[Trial]) -> list[dict[str, Any]]:
    sign = -1.0 if trials and trials[0].measure.higher_better else 1.0
    return [
        {
            "experiment": t.experiment,
            "learner": t.learner,
            "role": t.role,
            "status": t.status,
            t.measure.measure: t.final,
            **{k: v for k, v in _normalised_columns(t).items() if k != "nmsre_ci95"},
            "diverged_at_step": t.metrics.get("final_diverged_at_step", ""),
            "steps_done": t.metrics.get("final_steps_done", ""),
            "flops_per_step": t.params.get("ledger_flops_per_step", ""),
            "configuration": t.label(),
            "run_id": t.run_id,
        }
        for t in sorted(trials, key=lambda t: (t.learner, t.status != "finished", sign * t.final))
    ]


def _html_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    # a table wider than the page scrolls in its own box; the page never does
    return (f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")  # fmt: skip


def write_html(path: Path, title: str, summary: list[dict[str, Any]], trials: list[dict[str, Any]],
               figures: dict[str, Path], m: TaskKind = PREDICTION,
               sections: list[tuple[str, list[str]]] | None = None,
               n_resamples: int = 10_000) -> None:  # fmt: skip
    """The report page; each of ``sections`` = (heading, lines) adds a section after the
    summary."""
    ok = [r for r in trials if r["status"] in ("finished", "stopped_early", "running")]
    bad = [r for r in trials if r not in ok]
    figs = "".join(
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(caption)}'
        f"</figcaption></figure>"
        for caption, p in figures.items()
    )
    normalised = [] if m.higher_better else ["nmsre_mean", "nmsre_ci95", "learned"]
    same = ["same_seeds_mean", "same_seeds_ci95"] if summary and "same_seeds_mean" in summary[0] \
        else []  # fmt: skip
    summary_cols = ["learner", "selection", "configuration", "params", "flops_per_step", "seeds",
                    f"{m.measure}_mean", f"{m.measure}_ci95", *normalised, "boot_low",
                    "boot_high", "boot_method", "median", "iqm", "diverged_seeds",
                    "diverged_low", "diverged_high", *same, "steps_per_s"]  # fmt: skip
    trial_cols = ["experiment", "learner", "role", "status", m.measure,
                  *(["nmsre_mean", "learned"] if normalised else []), "steps_done",
                  "flops_per_step", "configuration"]  # fmt: skip
    unlearned = [r["learner"] for r in summary if r.get("learned") == "NO"]
    warning = (
        f'<p class="warn"><strong>Learned nothing a constant could not:</strong> '
        f"{html.escape(', '.join(unlearned))} (normalised MSRE not below 1 with 95% "
        f"confidence).</p>"
        if unlearned
        else ""
    )
    which = "highest" if m.higher_better else "lowest"
    bad_cols = ["experiment", "learner", "status", "diverged_at_step", "steps_done",
                "configuration", "run_id"]  # fmt: skip
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1300px; color: #222; }}
.wide {{ overflow-x: auto; max-width: 100%; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
th {{ background: #f0f0f0; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
figcaption {{ font-size: 0.85em; color: #555; }}
.warn {{ background: #fde8e8; border-left: 4px solid #c0392b; padding: 0.5em 1em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(_sentence(words(m).label))}: mean and half-width of the 95% Student-t interval over
the seeds of each learner's pick ({which} mean among trials that ran all their steps; where
the pick was run again on fresh seeds, its figures are those of the fresh seeds and
<code>same_seeds_*</code> are those of the seeds that picked it, as a paper that selects and
reports on the same seeds would give). <code>boot_low</code>-<code>boot_high</code>: the 95%
bootstrap interval ({n_resamples:,} resamples; <code>boot_method</code> names BCa or, where
BCa is undefined, percentile) of the mean of the compared value
({"the measure" if m.higher_better else "the normalised MSRE"}), beside its median and
interquartile mean, all over the finite seeds; <code>diverged_seeds</code> counts the seeds
that diverged, with the exact (Clopper-Pearson) 95% interval of the rate
(<code>diverged_low</code>-<code>diverged_high</code>).{
        ""
        if m.higher_better
        else " Normalised MSRE: the windowed MSRE over that of the best "
        "constant predictor on the same steps (1: nothing learned); learned = below 1 with 95% "
        "confidence."
    }</p>
{warning}
<h2>Best configuration per learner</h2>
{_html_table(summary, summary_cols)}
{"".join(_notes_html(n) for n in sections or [])}
<h2>Figures</h2>
{figs}
<h2>Every trial</h2>
{_html_table(ok, trial_cols)}
<h2>Diverged and failed trials ({len(bad)})</h2>
{_html_table(bad, bad_cols) if bad else "<p>None.</p>"}
<script>
// Self-check for a browser: records whether every figure decoded.
window.addEventListener("load", () => {{
  document.body.dataset.figures = [...document.images]
    .map((img) => img.complete && img.naturalWidth > 0).join(",");
}});
</script>
</body></html>
"""
    path.write_text(page)


def _notes_html(notes: tuple[str, list[str]] | None) -> str:
    if not notes:
        return ""
    heading, lines = notes
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<h2>{html.escape(heading)}</h2><ul>{items}</ul>"
