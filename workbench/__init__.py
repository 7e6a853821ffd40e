"""workbench: make a fine-tuning dataset trustworthy before training, and measure the result after."""

__version__ = "0.1.0"
