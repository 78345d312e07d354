from .lm import DecoderLM, build_model

__all__ = ["DecoderLM", "build_model"]
