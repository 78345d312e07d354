"""Evaluation of trained models: perplexity by position, and the lm-evaluation-harness adapter."""
