"""Token mixers and the parts they share. Every mixer has forward(x, state=None) -> (y, state),
step(x_t, state) -> (y_t, state) and state_size(context_length) in real numbers per sequence."""

from .interdomain import InterdomainAttention, InterdomainState
from .s4d import S4DMixer
from .softmax import KVCache, SoftmaxAttention

MIXERS = {"interdomain": InterdomainAttention, "s4d": S4DMixer, "softmax": SoftmaxAttention}

__all__ = ["MIXERS", "InterdomainAttention", "InterdomainState", "KVCache", "S4DMixer", "SoftmaxAttention"]
