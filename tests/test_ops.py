"""The core op: every backend against the float64 double-sum definition, and against each other."""

import pytest
import torch

from helpers import assert_close, random_op_inputs, random_state
from idattn_cli.ops import interdomain_attention
from idattn_cli.ops.linear_readout import linear_readout
from idattn_cli.ops.naive import naive

LENGTHS = [1, 2, 3, 5, 63, 64, 65, 200]
CHUNK_SIZES = [16, 64]


def run(backend, inputs, chunk_size=16, **kwargs):
    return interdomain_attention(*inputs, backend=backend, chunk_size=chunk_size, **kwargs)


@pytest.mark.parametrize("length", LENGTHS)
def test_scan_matches_double_sum(length):
    inputs = random_op_inputs(length=length)
    assert_close(run("scan", inputs), naive(*inputs), torch.float64, "scan")


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("length", LENGTHS)
def test_chunk_matches_double_sum(length, chunk_size):
    inputs = random_op_inputs(length=length)
    assert_close(run("chunk", inputs, chunk_size), naive(*inputs), torch.float64, "chunk")


@pytest.mark.parametrize("length", LENGTHS)
def test_fft_matches_double_sum(length):
    inputs = random_op_inputs(length=length)
    assert_close(run("fft", inputs), naive(*inputs), torch.float64, "fft")


@pytest.mark.parametrize("backend,chunk_size", [("scan", 16), ("chunk", 16), ("chunk", 64), ("fft", 16)])
@pytest.mark.parametrize("length", LENGTHS)
def test_float32_matches_float64_reference(length, backend, chunk_size):
    reference = naive(*random_op_inputs(length=length))
    inputs = random_op_inputs(length=length, dtype=torch.float32)
    o = run(backend, inputs, chunk_size)
    assert o.dtype == torch.float32
    assert_close(o, reference, torch.float32, backend)


def test_gradients_of_backends_agree():
    q, k, v, log_lam, b, c = random_op_inputs(length=37)
    state = random_state()
    grads = {}
    for backend in ("scan", "chunk", "fft"):
        leaves = [x.clone().requires_grad_() for x in (q, k, v, log_lam, b, c, state)]
        o, final = interdomain_attention(*leaves[:6], backend=backend, chunk_size=16,
                                         initial_state=leaves[6], output_final_state=True)
        # a random linear functional of both outputs exercises every path back to the inputs
        gen = torch.Generator().manual_seed(3)
        loss = (o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() + \
               (final * torch.randn(final.shape, generator=gen, dtype=final.dtype)).real.sum()
        grads[backend] = torch.autograd.grad(loss, leaves)
    names = ["q", "k", "v", "log_lam", "b", "c", "initial_state"]
    def real_view(g):
        return torch.view_as_real(g) if g.is_complex() else g

    for backend in ("chunk", "fft"):
        for name, g_scan, g_other in zip(names, grads["scan"], grads[backend]):
            assert g_scan.abs().max() > 0, f"zero gradient for {name}"
            assert_close(real_view(g_other), real_view(g_scan), torch.float64, f"{backend} {name}")


@pytest.mark.parametrize("backend,chunk_size", [("scan", 16), ("chunk", 16), ("chunk", 64), ("fft", 16)])
def test_state_handoff_at_uneven_splits(backend, chunk_size):
    q, k, v, log_lam, b, c = random_op_inputs(length=130)
    initial = random_state()
    whole, whole_final = interdomain_attention(q, k, v, log_lam, b, c, backend=backend, chunk_size=chunk_size,
                                               initial_state=initial, output_final_state=True)
    pieces, state = [], initial
    for start, end in [(0, 7), (7, 8), (8, 77), (77, 130)]:
        o, state = interdomain_attention(q[:, :, start:end], k[:, :, start:end], v[:, :, start:end],
                                         log_lam, b, c, backend=backend, chunk_size=chunk_size,
                                         initial_state=state, output_final_state=True)
        pieces.append(o)
    assert_close(torch.cat(pieces, dim=2), whole, torch.float64, "output")
    assert_close(torch.view_as_real(state), torch.view_as_real(whole_final), torch.float64, "final state")


@pytest.mark.parametrize("backend", ["chunk", "fft"])
@pytest.mark.parametrize("length", [1, 15, 16, 17, 50])
def test_final_state_matches_scan(length, backend):
    inputs = random_op_inputs(length=length)
    initial = random_state()
    _, scan_final = run("scan", inputs, initial_state=initial, output_final_state=True)
    _, final = run(backend, inputs, initial_state=initial, output_final_state=True)
    assert_close(torch.view_as_real(final), torch.view_as_real(scan_final), torch.float64, "final state")


@pytest.mark.parametrize("backend", ["scan", "chunk", "fft"])
def test_changing_token_leaves_earlier_outputs(backend):
    q, k, v, log_lam, b, c = random_op_inputs(length=50)
    before = run(backend, (q, k, v, log_lam, b, c))
    s = 21
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for x in (q2, k2, v2):
        x[:, :, s] += 1.0
    after = run(backend, (q2, k2, v2, log_lam, b, c))
    # bit-identical for scan and chunk; the FFT mixes all positions in floating point
    assert torch.allclose(after[:, :, :s], before[:, :, :s], rtol=0, atol=1e-13)
    assert (after[:, :, s] - before[:, :, s]).abs().max() > 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backend", ["scan", "chunk", "fft"])
def test_output_dtype_matches_input(dtype, backend):
    inputs = random_op_inputs(length=9, dtype=dtype)
    o, state = run(backend, inputs, output_final_state=True)
    assert o.dtype == dtype
    assert state.dtype == (torch.complex128 if dtype == torch.float64 else torch.complex64)
    assert torch.isfinite(o).all()


def test_chunk_under_autocast_matches_float32():
    inputs = random_op_inputs(length=70, dtype=torch.float32)
    expected = run("chunk", inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        o = run("chunk", inputs)
    assert o.dtype == torch.float32
    assert_close(o, expected, torch.float32, "autocast")


def test_invalid_arguments_raise():
    q, k, v, log_lam, b, c = random_op_inputs(length=8)
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        interdomain_attention(q, k, v, log_lam, b, c, backend="fast")
    with pytest.raises(ValueError, match="power of two; got 48"):
        interdomain_attention(q, k, v, log_lam, b, c, chunk_size=48)
    with pytest.raises(ValueError, match="v must have shape"):
        interdomain_attention(q, k, v[:, :, :4], log_lam, b, c)
    with pytest.raises(ValueError, match="c must have shape"):
        interdomain_attention(q, k, v, log_lam, b, c[:, :4])
    with pytest.raises(ValueError, match="initial_state must have shape"):
        interdomain_attention(q, k, v, log_lam, b, c, initial_state=random_state(width=5))
    with pytest.raises(ValueError, match="complex"):
        interdomain_attention(q, k, v, log_lam.real, b, c)


def naive_linear_readout(z, log_lam, b, c_out, initial_state):
    """y_t = sum_{s<=t} K_{t-s} z_s + Re(c_out . lam^{t+1} X_0), K_tau = Re(c_out . lam^tau b), directly."""
    length = z.shape[2]
    lags = torch.arange(length)
    kernel = torch.einsum("hm,htm->ht", c_out, torch.exp(lags[None, :, None] * log_lam[:, None]) * b[:, None]).real
    lag = lags[:, None] - lags[None, :]
    toeplitz = kernel[:, lag.clamp(min=0)] * (lag >= 0)
    carried = torch.einsum("hm,htm,bhmc->bhtc", c_out, torch.exp((lags[None, :, None] + 1) * log_lam[:, None]), initial_state)
    return torch.einsum("hts,bhsc->bhtc", toeplitz, z) + carried.real


@pytest.mark.parametrize("backend,chunk_size", [("scan", 16), ("chunk", 16), ("chunk", 64), ("fft", 16)])
@pytest.mark.parametrize("length", [1, 5, 16, 17, 65])
def test_linear_readout_matches_direct_sum(length, backend, chunk_size):
    q, k, v, log_lam, b, c = random_op_inputs(length=length)
    z = torch.cat([k, v], dim=-1)
    c_out = c[:, 0]
    initial = random_state()
    y, final = linear_readout(z, log_lam, b, c_out, backend=backend, chunk_size=chunk_size,
                              initial_state=initial, output_final_state=True)
    assert_close(y, naive_linear_readout(z, log_lam, b, c_out, initial), torch.float64, backend)
    _, scan_final = linear_readout(z, log_lam, b, c_out, backend="scan", initial_state=initial, output_final_state=True)
    assert_close(torch.view_as_real(final), torch.view_as_real(scan_final), torch.float64, "final state")
