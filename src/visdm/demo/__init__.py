"""The demo that ``make demo`` runs: the whole marketplace on its embedded defaults.

:func:`run_demo` plays it (see :mod:`._play`, with the collective in :mod:`._collective` and the
scoring round in :mod:`._newcomer`), :mod:`._cast` says who plays with which data,
:mod:`._settle` sums up each provider's round, :func:`write_report` writes ``report.json`` (what
:func:`report_json` makes, in the CLI's JSON language) and the plots.
"""

from ._cast import DemoConfig
from ._play import run_demo
from ._report import (
    DemoReport,
    DemoStep,
    Progress,
    collective_line,
    flag_quality_line,
    newcomer_line,
    report_json,
    write_report,
)

__all__ = [
    "DemoConfig",
    "DemoReport",
    "DemoStep",
    "Progress",
    "collective_line",
    "flag_quality_line",
    "newcomer_line",
    "report_json",
    "run_demo",
    "write_report",
]
