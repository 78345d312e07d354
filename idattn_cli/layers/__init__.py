"""Token mixers and the parts they share. Every mixer has forward(x, state=None) -> (y, state),
step(x_t, state) -> (y_t, state) and state_size() in real numbers per sequence."""

from .interdomain import InterdomainAttention, InterdomainState

MIXERS = {"interdomain": InterdomainAttention}

__all__ = ["MIXERS", "InterdomainAttention", "InterdomainState"]
