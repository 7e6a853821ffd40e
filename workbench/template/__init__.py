"""Chat templates: tokenizer loading, rendering, character/token offsets, loss masks (two derivations, verified)."""

from workbench.lazy import exports

__getattr__, __dir__, __all__ = exports(
    __name__,
    {
        "tokenizer": ["StopTokens", "eos_ids_in", "load_tokenizer", "model_dir_of", "read_template", "stop_tokens", "token_strings"],
        "chat": ["ConversationLike", "Renderer", "TemplateError", "has_generation_tags", "messages_of", "parse_template_kwargs",
                 "render", "set_template_kwargs", "template_kwargs_of"],
        "mask": ["IGNORE", "STRATEGIES", "MaskResult", "end_of_turn_ids", "render_and_mask", "trained_runs", "verify"],
        "batch": ["MAX_CHARS", "inspect", "pick", "render_bounded", "render_many", "result_dict"],
    },
)
