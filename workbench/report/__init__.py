"""Reports: the markdown before/after report and its figures."""

from workbench.lazy import exports

__getattr__, __dir__, __all__ = exports(
    __name__,
    {
        "markdown": ["decision_of", "render", "write_report"],
        "figures": ["before_after_figure", "loss_figure"],
    },
)
