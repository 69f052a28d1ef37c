"""labctl report: bench results into report.md, a self-contained report.html and chart.svg.

analysis.py     samples -> summaries and ratios to the host, per metric and per level
view.py         the report's content as strings, shared by both templates
charts.py       inline SVG bar charts (log scale), no plotting library
narrative.py    what explains each workload's cost at each level; the TCG warning
literature.py   published figures (Felter et al. 2015), labelled and cited
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labctl.state import atomic_write


def write_reports(data: dict[str, Any], out: Path) -> list[Path]:
    from labctl.report import view
    from labctl.report.analysis import analyse
    from labctl.templating import render

    analysis = analyse(data)
    context = view.build(analysis)
    overview = view.overview_svg(analysis)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "chart.svg": overview,
        "report.md": render("report/report.md.j2", **context),
        "report.html": render("report/report.html.j2", overview_svg=overview, **context),
    }
    for name, text in files.items():
        atomic_write(out / name, text.encode())
    return [out / name for name in files]
