"""idattn: an experiment toolkit for Interdomain Attention (arXiv:2605.24330)."""
