"""Text sources, tokenizers and the packing datamodule."""
