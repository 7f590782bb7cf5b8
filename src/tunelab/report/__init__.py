"""The comparison report: tables, plots, and one self-contained HTML page (plus Markdown).

    >>> from tunelab.report import write_report, console_table
    >>> paths = write_report("runs/compare", runs)   # doctest: +SKIP
    >>> paths["html"]                                # one file, opens offline   # doctest: +SKIP

``results`` are run records as :mod:`tunelab.run.record` describes them. matplotlib is imported only
when a report is drawn, rich only when a console table is built.
"""

from tunelab.report.tables import axes_table, console_table, results_table, write_results_csv
from tunelab.report.writer import write_report

__all__ = ["axes_table", "console_table", "results_table", "write_report", "write_results_csv"]
