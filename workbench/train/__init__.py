"""Training: LoRA targets, memory plan, training data, the trainer, logs, and the small local models."""

from workbench.lazy import exports

__getattr__, __dir__, __all__ = exports(
    __name__,
    {
        "trainer": ["TrainResult", "model_path", "train"],
        "lora": ["resolve"],
        "merging": ["COMBINATIONS", "merge"],
        "backend": ["import_unsloth_first", "same_base"],
        "lock": ["run_lock"],
        "plan": ["METHODS", "Plan", "estimate", "for_recipe"],
        "data": ["Prepared", "prepare"],
        "log": ["TrainEvent"],
        "launch": ["LaunchConfig", "check_launch", "launch_train", "read_config", "should_launch"],
        "ranks": ["World", "current_world"],
        "tiny": ["FAMILIES", "build", "build_model", "build_tokenizer"],
        "pretrain": ["cached", "default_dir", "pretrain_base"],
        "names": ["resolve_model_name"],
    },
)
