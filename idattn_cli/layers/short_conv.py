"""Causal depthwise convolution over time ("short conv"), with a fixed-size state for decoding."""

import torch
import torch.nn.functional as F
from torch import nn


class ShortConv(nn.Module):
    """y_t = sum_{i<K} w_i x_{t-K+1+i} + bias, per channel. x `(batch, len, channels)`.

    The state is the last K-1 inputs `(batch, K-1, channels)`, zeros before the first token.
    """

    def __init__(self, channels: int, kernel_size: int = 4):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=True)

    def initial_state(self, batch: int, device=None, dtype=None):
        return torch.zeros(batch, self.kernel_size - 1, self.conv.in_channels, device=device, dtype=dtype)

    def forward(self, x, state=None):
        """Return (y `(batch, len, channels)`, state after the last token)."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        history = torch.cat([state.to(x.dtype), x], dim=1)         # (batch, K-1+len, channels)
        y = F.conv1d(history.transpose(1, 2), self.conv.weight, self.conv.bias, groups=self.conv.groups)
        return y.transpose(1, 2), history[:, history.shape[1] - (self.kernel_size - 1):]

    def step(self, x_t, state):
        """One token: x_t `(batch, channels)`; returns (y_t, state)."""
        window = torch.cat([state.to(x_t.dtype), x_t[:, None]], dim=1)   # (batch, K, channels)
        y_t = torch.einsum("bkc,ck->bc", window, self.conv.weight[:, 0]) + self.conv.bias
        return y_t, window[:, 1:]
