"""An HTML page for an :class:`~ope.evaluation.EvaluationReport`.

``write_report(report, directory)`` writes ``index.html`` with two matplotlib
figures beside it: the estimates with their intervals per policy (and the true
value when known), and the weight diagnostics (effective sample size share,
max weight, unsupported share) that say how far to trust them. A policy
search adds its table of candidates, feature importance a bar chart.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ope.evaluation import EvaluationReport

if TYPE_CHECKING:
    from ope.importance import FeatureScore
    from ope.search import SearchResult

__all__ = ["write_report"]


def _plot_estimates(report: EvaluationReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(report.estimates)
    estimators = list(dict.fromkeys(name for by in report.estimates.values() for name in by))
    width = 0.8 / max(len(estimators), 1)
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(policies) + 2), 4.5))
    for j, name in enumerate(estimators):
        xs, values, low, high = [], [], [], []
        for i, policy in enumerate(policies):
            estimate = report.estimates[policy].get(name)
            if estimate is None or not np.isfinite(estimate.value):
                continue
            xs.append(i - 0.4 + width * (j + 0.5))
            values.append(estimate.value)
            low.append(estimate.value - estimate.ci[0])
            high.append(estimate.ci[1] - estimate.value)
        axis.errorbar(xs, values, yerr=[low, high], fmt="o", capsize=3, label=name)
    for i, policy in enumerate(policies):
        if policy in report.true_values:
            axis.hlines(report.true_values[policy], i - 0.45, i + 0.45, colors="black",
                        linestyles="dashed", label="true value" if i == 0 else None)
    axis.set_xticks(range(len(policies)), policies, rotation=20)
    axis.set_ylabel("estimated policy value")
    level = next((e.confidence_level for by in report.estimates.values() for e in by.values()),
                 0.95)
    axis.set_title(f"Estimates with {level:.0%} intervals ({report.n_rounds:,} rounds)")
    axis.legend(fontsize="small")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_weights(report: EvaluationReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(report.estimates)
    first = [next(iter(report.estimates[p].values())).diagnostics for p in policies]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    x = np.arange(len(policies))
    axes[0].bar(x, [d.effective_sample_size / report.n_rounds for d in first])
    axes[0].set_title("effective sample size / rounds")
    axes[0].set_ylim(0, 1.05)
    axes[1].bar(x, [max(d.max_weight, 1e-12) for d in first])
    axes[1].set_yscale("log")
    axes[1].set_title("max importance weight")
    axes[2].bar(x, [d.unsupported_share or 0.0 for d in first])
    axes[2].set_ylim(0, 1.05)
    axes[2].set_title("share of rounds off the logger's support")
    for axis in axes:
        axis.set_xticks(x, policies, rotation=20)
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_feature_scores(scores: Sequence[FeatureScore], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{s.namespace}.{s.feature_name}" for s in scores]
    top = max((s.drop for s in scores if s.score == 1.0), default=0.0)
    scale = 1.0 / top if top > 0 else 0.0
    # the drop's interval on the score's scale; scores below 0 are shown as 0
    low = [max(s.score - max(s.ci[0] * scale, 0.0), 0.0) for s in scores]
    high = [max(s.ci[1] * scale - s.score, 0.0) for s in scores]
    figure, axis = plt.subplots(figsize=(7, 0.35 * len(scores) + 1.2))
    y = np.arange(len(scores))[::-1]
    axis.barh(y, [s.score for s in scores], xerr=[low, high], capsize=2, color="tab:blue")
    axis.set_yticks(y, names, fontsize="small")
    axis.set_xlabel("importance (drop in the policy's value without it; 1 = largest)")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _search_table(search: SearchResult) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(row.stage)}</td><td><code>{html.escape(row.args)}</code></td>"
        f"<td>{row.value:.4f}</td><td>[{row.ci[0]:.4f}, {row.ci[1]:.4f}]</td>"
        f"<td>{row.cpu_seconds:.2f}</td></tr>"
        for row in sorted(search.trace, key=lambda r: -r.value))
    return (f"<h2>Policy search</h2><p>{search.n_candidates} candidates in "
            f"{search.cpu_seconds:.1f} CPU-seconds (seeds not counted); best: "
            f"<code>{html.escape(search.best.args)}</code>.</p>"
            f'<table class="estimates"><tr><th>stage</th><th>arguments</th><th>SNIPS</th>'
            f"<th>interval</th><th>CPU-s</th></tr>{rows}</table>")


def write_report(report: EvaluationReport, directory: str | Path, *,
                 search: SearchResult | None = None,
                 feature_scores: Sequence[FeatureScore] | None = None) -> Path:
    """Write ``index.html``, ``estimates.png`` and ``weights.png`` into ``directory``.

    Parameters
    ----------
    report : EvaluationReport
    directory : path
        Created if missing; existing files of the same names are replaced.
    search : SearchResult, default=None
        Adds the table of the search's candidates, best first.
    feature_scores : sequence of FeatureScore, default=None
        Adds ``features.png``, a bar chart of the scores with the drops' intervals.

    Returns
    -------
    Path
        The ``index.html`` written.
    """
    if not isinstance(report, EvaluationReport):
        raise TypeError(f"report must be an EvaluationReport, got {type(report).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _plot_estimates(report, directory / "estimates.png")
    _plot_weights(report, directory / "weights.png")
    frame = report.to_frame()
    table = frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="",
                          border=0, classes="estimates")
    notes = html.escape(json.dumps(report.notes, indent=2, default=str)) if report.notes else ""
    warnings = "".join(f"<li>{html.escape(warning)}</li>" for warning in report.warnings)
    extra = _search_table(search) if search is not None else ""
    if feature_scores:
        _plot_feature_scores(feature_scores, directory / "features.png")
        extra += ('<h2>Feature importance</h2><img src="features.png" '
                  'alt="feature importance scores with intervals">')
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>banditkit off-policy evaluation</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 1200px; }}
table.estimates {{ border-collapse: collapse; font-size: 0.85rem; }}
table.estimates td, table.estimates th {{ padding: 0.2rem 0.5rem; border-bottom: 1px solid #ddd;
  text-align: right; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Off-policy evaluation</h1>
{f'<h2>Warnings</h2><ul class="warnings">{warnings}</ul>' if warnings else ""}
<p>{report.n_rounds:,} logged rounds; {len(report.estimates)} policies.
Each interval's kind is in the <code>ci_method</code> column; ESS is Kish's effective sample
size of the importance weights; <code>unsupported_share</code> is the share of rounds where
the policy puts mass on actions the logging policy never explores there (estimates cannot see
those actions).</p>
<h2>Estimates</h2>
<img src="estimates.png" alt="estimates with confidence intervals per policy">
<h2>Weight diagnostics</h2>
<img src="weights.png" alt="importance weight diagnostics per policy">
<h2>Table</h2>
{table}
{extra}
{f"<h2>Notes</h2><pre>{notes}</pre>" if notes else ""}
</body></html>
"""
    index = directory / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
