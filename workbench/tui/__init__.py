"""The Textual app over the workbench library: `workbench tui data.jsonl [--model DIR]`."""
