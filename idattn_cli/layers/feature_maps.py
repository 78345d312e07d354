"""Feature maps xi that turn queries and keys into kernel features: K(q, k) ~ xi(q)^T xi(k)."""

import torch.nn.functional as F


def silu_l2(x, eps: float = 1e-6):
    """xi(x) = SiLU(x) / ||SiLU(x)||_2 over the last dimension (DeltaNet-style)."""
    y = F.silu(x)
    return y / (y.norm(dim=-1, keepdim=True) + eps)


FEATURE_MAPS = {"silu_l2": silu_l2}
