"""Training: LoRA targets, memory plan, training data, the trainer, logs, and the small local models."""

from workbench.lazy import exports

__getattr__, __dir__, __all__ = exports(
    __name__,
    {
        "trainer": ["TrainResult", "model_path", "train"],
        "lora": ["merge", "resolve"],
        "plan": ["METHODS", "Plan", "estimate"],
        "data": ["Prepared", "prepare"],
        "log": ["TrainEvent"],
        "tiny": ["FAMILIES", "build", "build_model", "build_tokenizer"],
        "pretrain": ["cached", "default_dir", "pretrain_base"],
        "names": ["resolve_model_name"],
    },
)
