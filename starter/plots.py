"""Charts people would rather look at than read: attempts to connect, answer rate by hour."""

from __future__ import annotations

from pathlib import Path

from rich.color import Color
from rich.style import Style
from rich.table import Table
from rich.text import Text

from redialer.answer_rates import WEEKDAYS, AnswerRates
from redialer.report import CampaignReport

#: The heat-map's ends: a dark blue for the worst hour, a bright green for the best.
_COLD, _HOT = (25, 30, 70), (60, 220, 100)


def draw_report(reports: list[CampaignReport], path: Path) -> list[str]:
    """Two panels: connections per attempt (with the cumulative rate) and answers by local hour.

    Two reports are drawn side by side in each panel, for an A/B comparison. Returns the axis
    labels drawn (what a reader of the image sees on each axis).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen needed
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
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
    fig.suptitle(" vs ".join(r.campaign_id for r in reports))
    fig.savefig(path, dpi=110)
    labels = [ax.get_xlabel() for ax in (left, right)] + [
        ax.get_ylabel() for ax in (left, cumulative_axis, right)
    ]
    plt.close(fig)
    return labels


def answer_rate_heatmap(rates: AnswerRates) -> Table:
    """A 7 x 24 text heat-map of the expected answer rate (%) by local weekday and hour.

    What the smart strategy believes: the posterior mean, so hours without calls show the seed
    products' advice (dimmed) and hours with calls what they taught it. Shades run from the
    table's worst hour to its best; the numbers carry it without colour.
    """
    expected = [rates.expected_rate(how) for how in range(7 * 24)]
    low, high = min(expected), max(expected)
    table = Table(
        title="expected answer rate (%) by local hour (recipient's time zone)",
        caption=f"from {rates.calls:,} calls; dim: no calls yet, the seed products' advice",
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
        for hour in range(24):
            how = day * 24 + hour
            share = (expected[how] - low) / (high - low) if high > low else 0.0
            color = tuple(round(c + (h - c) * share) for c, h in zip(_COLD, _HOT, strict=True))
            style = Style(
                bgcolor=Color.from_rgb(*color),
                color="black" if share > 0.6 else "white",
                dim=rates.attempts[how] == 0,
            )
            cells.append(Text(f"{round(expected[how] * 100):>3}", style=style))
        table.add_row(name[:3].title(), *cells)
    return table
