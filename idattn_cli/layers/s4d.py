"""S4D-only token mixer: the SSM baseline of arXiv:2605.24330, iso-state with interdomain attention.

It keeps the complex S4D core, full read-out C, short convs and input normalization of the
interdomain layer. The input is a generic [a_t ; b_t] with no feature map, and a learned linear
read-out over the M coefficients replaces the query-conditioned projection:

    X_t = lam (.) X_{t-1} + B_bar [a~_t ; b~_t]^T,   y_t = Re(C X_t)^T w   (R+P per head),   out = W_O y

It is `InterdomainAttention(input="generic", readout="linear")`, so for the same heads, M, R and P the
state is the same size by construction: 2 M (R+P) real numbers per head.
"""

from .interdomain import InterdomainAttention


class S4DMixer(InterdomainAttention):
    def __init__(self, d_model: int, n_heads: int, rope: bool = False, **kwargs):
        for fixed in ("input", "readout", "kv_groups"):
            if fixed in kwargs:
                raise ValueError(f"the s4d mixer fixes {fixed}; use mixer=interdomain to change it")
        super().__init__(d_model, n_heads, input="generic", readout="linear", rope=rope, **kwargs)
