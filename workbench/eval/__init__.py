"""Evaluation: lm-eval task folders and runs, results files, held-out metrics, paired statistics."""

from workbench.lazy import exports

__getattr__, __dir__, __all__ = exports(
    __name__,
    {
        "run": ["Settings", "evaluate", "evaluate_pair", "evaluate_run", "fingerprint"],
        "results": ["SCHEMA", "EvalResults", "load", "save"],
        "paired": ["Comparison", "Delta", "compare", "mcnemar", "z_test"],
        "tasks": ["TaskDir", "prepare_tasks"],
    },
)
