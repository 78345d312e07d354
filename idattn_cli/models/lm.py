"""Llama-style pre-norm decoder LM with a pluggable token mixer.

    h = embed(tokens)                                     (batch, len, d_model)
    for each block:  h = h + mixer(RMSNorm(h));  h = h + SwiGLU(RMSNorm(h))
    logits = lm_head(RMSNorm(h))                          (batch, len, vocab), untied from embed

SwiGLU hidden width: (2/3) 4 d_model rounded up to a multiple of `ffn_multiple_of`. Init: normal
std 0.02 for every Linear and the embedding, and 0.02 / sqrt(2 n_layers) for the projections that
write into the residual stream (mixer out_proj, FFN w2). Mixer-specific parameters keep their own init.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import MIXERS
from ..layers.norms import RMSNorm


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, multiple_of: int):
        super().__init__()
        hidden = multiple_of * math.ceil(2 * 4 * d_model / 3 / multiple_of)
        self.w1 = nn.Linear(d_model, hidden, bias=False)
        self.w3 = nn.Linear(d_model, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, d_model: int, mixer: nn.Module, ffn_multiple_of: int, norm_eps: float):
        super().__init__()
        self.mixer_norm = RMSNorm(d_model, norm_eps)
        self.mixer = mixer
        self.ffn_norm = RMSNorm(d_model, norm_eps)
        self.ffn = SwiGLU(d_model, ffn_multiple_of)

    def forward(self, h, state=None):
        y, state = self.mixer(self.mixer_norm(h), state)
        h = h + y
        return h + self.ffn(self.ffn_norm(h)), state

    def step(self, h_t, state=None):
        y_t, state = self.mixer.step(self.mixer_norm(h_t), state)
        h_t = h_t + y_t
        return h_t + self.ffn(self.ffn_norm(h_t)), state


class DecoderLM(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, mixer: str,
                 mixer_kwargs: dict | None = None, ffn_multiple_of: int = 128, norm_eps: float = 1e-6):
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f"unknown mixer {mixer!r}; valid mixers: {', '.join(MIXERS)}")
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(
            Block(d_model, MIXERS[mixer](d_model, n_heads, **(mixer_kwargs or {})), ffn_multiple_of, norm_eps)
            for _ in range(n_layers)
        )
        self.norm = RMSNorm(d_model, norm_eps)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self._init_weights(n_layers)

    def _init_weights(self, n_layers: int):
        residual_std = 0.02 / math.sqrt(2 * n_layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual_std if name.endswith(("mixer.out_proj", "ffn.w2")) else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)

    def ssm_parameters(self):
        """Parameters of the mixers' recurrences and input norms (own LR cap, no weight decay)."""
        return [p for block in self.blocks if hasattr(block.mixer, "ssm_parameters")
                for p in block.mixer.ssm_parameters()]

    def state_size_per_layer(self, context_length: int) -> int:
        """Mixer state of one layer in real numbers per sequence after `context_length` tokens."""
        return self.blocks[0].mixer.state_size(context_length)

    def flops_per_token(self, context_length: int) -> dict[str, int]:
        """Estimate forward and decode FLOPs per token: 2 per weight of every Linear (embedding lookups
        are free), plus the mixers' own work at `context_length`."""
        dense = 2 * sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        totals = {}
        for block in self.blocks:
            for key, value in block.mixer.flops_per_token(context_length).items():
                totals[key] = totals.get(key, dense) + value
        return totals

    def forward(self, tokens, states=None):
        """tokens `(batch, len)` -> (logits `(batch, len, vocab)`, per-layer states)."""
        h, states = self._blocks(self.embed(tokens), states)
        return self.lm_head(self.norm(h)), states

    def _blocks(self, h, states=None):
        """Run the blocks over h `(batch, len, d_model)`; return the last hidden states and per-layer states."""
        states = states or [None] * len(self.blocks)
        new_states = []
        for block, state in zip(self.blocks, states):
            h, state = block(h, state)
            new_states.append(state)
        return h, new_states

    @torch.no_grad()
    def prefill(self, tokens, states=None, prefill_chunk_size: int | None = None):
        """Read a prompt `(batch, len)` -> (logits of its last token `(batch, vocab)`, per-layer states).

        Only the last position goes through lm_head. With `prefill_chunk_size`, the prompt is read
        in pieces of that many tokens with the states handed over, so only one piece's activations
        are alive at a time. A softmax mixer's KV cache still grows with the whole prompt.
        """
        for piece in tokens.split(prefill_chunk_size or tokens.shape[1], dim=1):
            h, states = self._blocks(self.embed(piece), states)
        return self.lm_head(self.norm(h[:, -1])), states

    @torch.no_grad()
    def step(self, token, states=None):
        """Decode one token per sequence `(batch,)` -> (logits `(batch, vocab)`, states)."""
        h = self.embed(token)
        states = states or [None] * len(self.blocks)
        new_states = []
        for block, state in zip(self.blocks, states):
            h, state = block.step(h, state)
            new_states.append(state)
        return self.lm_head(self.norm(h)), new_states


def build_model(model_cfg, mixer_cfg, vocab_size: int) -> DecoderLM:
    """Build the LM from the `model` and `mixer` config groups (plain dicts or DictConfigs).

    The embedding has `model.vocab_size` rows when the preset sets it (32,000 at the paper scales),
    else the tokenizer's `vocab_size`.
    """
    mixer_kwargs = {key: value for key, value in dict(mixer_cfg).items() if key != "name"}
    return DecoderLM(
        vocab_size=model_cfg.get("vocab_size") or vocab_size,
        d_model=model_cfg["d_model"],
        n_layers=model_cfg["n_layers"],
        n_heads=model_cfg["n_heads"],
        mixer=mixer_cfg["name"],
        mixer_kwargs=mixer_kwargs,
        ffn_multiple_of=model_cfg["ffn_multiple_of"],
        norm_eps=model_cfg["norm_eps"],
    )
