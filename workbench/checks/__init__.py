"""Checks: finding codes, template-level and row-level checks, and the run that gathers them."""

from workbench.lazy import exports

__getattr__, __dir__, __all__ = exports(
    __name__,
    {
        "codes": ["CODES", "TEMPLATE_WIDE", "Code", "finding"],
        "run": ["CheckReport", "check_options", "run_checks", "sort_findings"],
        "template": ["TemplateFacts", "template_checks"],
        "rows": ["RowStats", "row_checks"],
    },
)
