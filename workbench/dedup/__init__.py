"""Dedup: the MinHash engine, exact + near dedup with verified clusters, decontamination, outputs."""

from workbench.lazy import exports

__getattr__, __dir__, __all__ = exports(
    __name__,
    {
        "engine": ["KEEPS", "REASONS", "Cluster", "DedupConfig", "DedupResult", "Removed", "dedup"],
        "views": ["VIEWS", "text_view"],
        "decontam": ["AgainstSet", "load_against", "reason_for"],
        "outputs": ["DedupRun", "apply_overrides", "default_paths", "run_files", "summary", "write_outputs"],
        "ray_engine": ["RayDedupRun", "run_ray"],
    },
)
