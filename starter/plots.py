"""Charts people would rather look at than read: attempts to connect, answer rate by hour."""

from __future__ import annotations

from pathlib import Path

from redialer.report import CampaignReport


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
