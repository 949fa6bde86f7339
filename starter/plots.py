"""Charts people would rather look at than read: attempts to connect, answer rate by hour.

One heat-map of answer rates by local weekday and hour, drawn two ways from the same 7 x 24 grid:
as text (`answer_rate_heatmap`, for `redialer report` and the smart strategy's table) and as an
image (`draw_report`, for `redialer report --plot`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.color import Color
from rich.style import Style
from rich.table import Table
from rich.text import Text

from redialer.answer_rates import WEEKDAYS, AnswerRates
from redialer.report import CampaignReport, HourOfWeekBucket

#: The heat-map's ends: a dark blue for the worst hour, a bright green for the best.
_COLD, _HOT = (25, 30, 70), (60, 220, 100)

#: A 7 x 24 grid of answer rates, Monday first; None where no call was placed.
Grid = list[list[float | None]]


def hour_of_week_grid(buckets: Iterable[HourOfWeekBucket]) -> Grid:
    """A report's hour-of-week buckets as 7 rows (Monday first) of 24 answer rates."""
    grid: Grid = [[None] * 24 for _ in WEEKDAYS]
    for b in buckets:
        grid[WEEKDAYS.index(b.weekday)][b.hour] = b.rate
    return grid


def draw_report(reports: list[CampaignReport], path: Path) -> list[str]:
    """Connections per attempt (with the cumulative rate) and answers by local hour, above a
    heat-map of the answer rate by local hour of the week per campaign.

    Two reports are drawn side by side in each upper panel, and get a heat-map each, for an A/B
    comparison. Returns the axis labels drawn (what a reader of the image sees on each axis).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen needed
    import matplotlib.pyplot as plt

    n = len(reports)
    fig = plt.figure(figsize=(12, 9), layout="constrained")
    grid = fig.add_gridspec(2, 2 * n, height_ratios=[4.8, 3.6])
    left, right = fig.add_subplot(grid[0, :n]), fig.add_subplot(grid[0, n:])
    heat_axes = [fig.add_subplot(grid[1, 2 * i : 2 * i + 2]) for i in range(n)]
    width = 0.8 / len(reports)
    cumulative_axis = left.twinx()
    bar_colors, line_colors = ["tab:blue", "tab:green"], ["tab:orange", "tab:red"]
    for i, r in enumerate(reports):
        attempts = [a.attempt for a in r.attempts]
        offset = (i - (len(reports) - 1) / 2) * width
        left.bar(
            [a + offset for a in attempts],
            [a.connected for a in r.attempts],
            width,
            color=bar_colors[i % 2],
            label=f"{r.campaign_id}: connected",
        )
        cumulative_axis.plot(
            attempts,
            [a.cumulative_rate * 100 for a in r.attempts],
            marker="o",
            color=line_colors[i % 2],
            linewidth=2,
            label=f"{r.campaign_id}: cumulative %",
        )
        hours = list(r.answer_rate_by_hour)
        right.bar(
            [h + offset for h in hours],
            [b.rate * 100 for b in r.answer_rate_by_hour.values()],
            width,
            color=bar_colors[i % 2],
            label=r.campaign_id,
        )
    left.set_title("Attempts to connect")
    left.set_xlabel("attempt number")
    left.set_ylabel("recipients connected on this attempt")
    cumulative_axis.set_ylabel("cumulative connection rate (%)")
    cumulative_axis.set_ylim(0, 100)
    most = max((a.connected for r in reports for a in r.attempts), default=1)
    left.set_ylim(0, most * 1.35)  # headroom for the legend
    left.set_xticks(sorted({a.attempt for r in reports for a in r.attempts}))
    handles = left.get_legend_handles_labels()
    extra = cumulative_axis.get_legend_handles_labels()
    left.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper right", fontsize="small")
    right.set_title("Answer rate by local hour of day")
    right.set_xlabel("local hour (recipient's time zone)")
    right.set_ylabel("answered by a person (%)")
    right.set_xlim(-0.5, 23.5)
    right.set_xticks(range(0, 24, 3))
    right.set_ylim(0, 100)
    if len(reports) > 1:
        right.legend(fontsize="small")
    colorbar_labels = [_draw_heatmap(fig, ax, r) for ax, r in zip(heat_axes, reports, strict=True)]
    fig.suptitle(" vs ".join(r.campaign_id for r in reports))
    fig.savefig(path, dpi=110)
    labels = (
        [ax.get_xlabel() for ax in (left, right, *heat_axes)]
        + [ax.get_ylabel() for ax in (left, cumulative_axis, right, *heat_axes)]
        + colorbar_labels
    )
    plt.close(fig)
    return labels


def _draw_heatmap(fig: Any, ax: Any, report: CampaignReport) -> str:
    """The report's answer rate (%) by local weekday and hour; grey where no call was placed.

    Returns the colour bar's label."""
    import matplotlib.pyplot as plt
    import numpy as np

    grid = hour_of_week_grid(report.answer_rate_by_hour_of_week)
    rates = np.ma.masked_invalid(
        np.array([[np.nan if v is None else v * 100 for v in row] for row in grid], dtype=float)
    )
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    image = ax.imshow(rates, cmap=cmap, vmin=0, vmax=100, aspect="auto", interpolation="nearest")
    ax.set_title(f"{report.campaign_id}: answer rate by local hour of the week")
    ax.set_xlabel("local hour (recipient's time zone)")
    ax.set_ylabel("local weekday")
    ax.set_xticks(range(0, 24, 3))
    ax.set_yticks(range(7), [d[:3].title() for d in WEEKDAYS])
    label = "answered by a person (%); grey: no calls"
    fig.colorbar(image, ax=ax, label=label, fraction=0.05, pad=0.02)
    return label


def answer_rate_heatmap(source: AnswerRates | Sequence[HourOfWeekBucket]) -> Table:
    """A 7 x 24 text heat-map of the answer rate (%) by local weekday and hour.

    From an `AnswerRates`: what the smart strategy believes, the posterior mean, so hours
    without calls show the seed products' advice (dimmed) and hours with calls what they taught
    it. From a report's hour-of-week buckets: the observed rate, '-' where no call was placed.
    Shades run from the table's worst hour to its best; the numbers carry it without colour.
    """
    if isinstance(source, AnswerRates):
        grid: Grid = [
            [source.expected_rate(day * 24 + hour) for hour in range(24)]
            for day in range(len(WEEKDAYS))
        ]
        dim = [[source.attempts[day * 24 + hour] == 0 for hour in range(24)] for day in range(7)]
        title = "expected answer rate (%) by local hour (recipient's time zone)"
        caption = f"from {source.calls:,} calls; dim: no calls yet, the seed products' advice"
    else:
        grid = hour_of_week_grid(source)
        dim = [[False] * 24 for _ in WEEKDAYS]
        title = "answer rate (%) by local hour of the week (recipient's time zone)"
        calls = sum(b.calls for b in source)
        caption = f"from {calls:,} calls placed; -: no calls in that hour"
    return _heatmap(grid, dim, title=title, caption=caption)


def _heatmap(grid: Grid, dim: list[list[bool]], *, title: str, caption: str) -> Table:
    """The one text heat-map: a weekday per line, a number per hour, each cell 3 wide (so a
    week fits 80 columns): 100 % shows as 99, which the caption then says."""
    known = [v for row in grid for v in row if v is not None]
    low, high = min(known, default=0.0), max(known, default=0.0)
    if any(round(v * 100) > 99 for v in known):
        caption += "; 99: 99 % or more"
    table = Table(
        title=title,
        caption=caption,
        box=None,
        padding=(0, 0),
        pad_edge=False,
        show_edge=False,
    )
    table.add_column("", justify="left", no_wrap=True)
    for hour in range(24):
        table.add_column(f"{hour:>3}", justify="right", no_wrap=True)
    for day, name in enumerate(WEEKDAYS):
        cells: list[Text] = []
        for hour, rate in enumerate(grid[day]):
            if rate is None:
                cells.append(Text(f"{'-':>3}", style=Style(dim=True)))
                continue
            share = (rate - low) / (high - low) if high > low else 0.0
            color = tuple(round(c + (h - c) * share) for c, h in zip(_COLD, _HOT, strict=True))
            style = Style(
                bgcolor=Color.from_rgb(*color),
                color="black" if share > 0.6 else "white",
                dim=dim[day][hour],
            )
            cells.append(Text(f"{min(round(rate * 100), 99):>3}", style=style))
        table.add_row(name[:3].title(), *cells)
    return table
