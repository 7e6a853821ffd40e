"""Dedup: the MinHash engine, exact + near dedup with verified clusters, decontamination, outputs."""

from workbench.lazy import exports

__getattr__, __dir__, __all__ = exports(
    __name__,
    {
        "engine": ["KEEPS", "REASONS", "Cluster", "DedupConfig", "DedupResult", "Removed", "dedup"],
        "views": ["VIEWS", "text_view"],
        "decontam": ["AgainstSet", "load_against", "reason_for"],
        "outputs": ["apply_overrides", "summary", "write_outputs"],
        "files": ["DedupRun", "default_paths", "run_files"],
        "ray_engine": ["RayDedupRun", "run_ray"],
    },
)
