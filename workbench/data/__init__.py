"""Data in: readers, schema adapters, ingest with rejects, content lint, stats, export, the TUI's row index."""

from workbench.lazy import exports

__getattr__, __dir__, __all__ = exports(
    __name__,
    {
        "export": ["FORMATS", "format_for", "write_conversations"],
        "formats": ["SCHEMAS", "RowError", "detect", "remap", "to_canonical", "from_canonical", "normalise_role"],
        "ingest": ["IngestReport", "IngestStream", "Ingested", "default_rejects_path", "ingest_to", "load", "no_usable_rows", "require_usable", "stream"],
        "content": ["RULES", "Linter", "lint"],
        "rowindex": ["RowIndex"],
        "stats": ["describe", "frame", "histogram", "plot", "summary"],
    },
)
