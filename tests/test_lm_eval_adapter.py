"""DecoderLMAdapter against direct float64 computations: scoring, batching, rolling windows, decoding."""

import pytest
import torch
from lm_eval.api.instance import Instance
from torch import nn

from idattn_cli.config import compose_config
from idattn_cli.data.tokenizers import ByteTokenizer
from idattn_cli.errors import UserError
from idattn_cli.evaluation.lm_eval_adapter import DecoderLMAdapter
from idattn_cli.models import build_model

PREFIX = ord("\n")
TEXT = "Shall I compare thee to a summer's day? Thou art more lovely and more temperate."


def tiny_model(mixer="interdomain", dtype=torch.float64, seed=0):
    cfg = compose_config(["model.n_layers=2", f"mixer={mixer}"])
    torch.manual_seed(seed)
    return build_model(cfg.model, cfg.mixer, 256).to(dtype).eval()


def adapter(model, max_length=128, batch_size=4, tokenizer=None):
    return DecoderLMAdapter(model, tokenizer or ByteTokenizer(), max_length=max_length, batch_size=batch_size,
                            prefix_token_id=PREFIX)


def requests(kind, arguments):
    return [Instance(kind, {}, args, index) for index, args in enumerate(arguments)]


@torch.no_grad()
def direct_logprob(model, context: list[int], continuation: list[int]) -> tuple[float, bool]:
    """log p(continuation | context) in float64 from one unpadded forward pass."""
    tokens = torch.tensor([context + continuation])
    logits, _ = model(tokens[:, :-1])
    logprobs = logits.double().log_softmax(-1)[0, -len(continuation):]
    targets = torch.tensor(continuation)
    greedy = bool((logprobs.argmax(-1) == targets).all())
    return float(logprobs.gather(-1, targets[:, None]).sum()), greedy


def encode(text):
    return list(text.encode("utf-8"))


def test_loglikelihood_matches_direct_float64():
    model = tiny_model()
    cases = [("Shall I compare thee", " to a summer's day?"), ("Thou art", " more lovely")]
    scores = adapter(model).loglikelihood(requests("loglikelihood", cases))
    for (context, continuation), (logprob, greedy) in zip(cases, scores):
        expected, expected_greedy = direct_logprob(model, encode(context), encode(continuation))
        assert abs(logprob - expected) < 1e-10, (context, logprob, expected)
        assert greedy == expected_greedy


def test_loglikelihood_moves_trailing_space():
    model = tiny_model()
    ((logprob, _),) = adapter(model).loglikelihood(requests("loglikelihood", [("The cat ", "sat")]))
    expected, _ = direct_logprob(model, encode("The cat"), encode(" sat"))
    assert abs(logprob - expected) < 1e-10


def test_loglikelihood_empty_context_uses_prefix():
    model = tiny_model()
    ((logprob, _),) = adapter(model).loglikelihood(requests("loglikelihood", [("", "Shall I")]))
    expected, _ = direct_logprob(model, [PREFIX], encode("Shall I"))
    assert abs(logprob - expected) < 1e-10


def test_loglikelihood_truncates_context_on_the_left():
    model = tiny_model()
    context, continuation = TEXT, " Rough winds"
    ((logprob, _),) = adapter(model, max_length=24).loglikelihood(requests("loglikelihood", [(context, continuation)]))
    window = (encode(context) + encode(continuation))[-25:]
    expected, _ = direct_logprob(model, window[: -len(continuation)], window[-len(continuation):])
    assert abs(logprob - expected) < 1e-10


def test_loglikelihood_rejects_overlong_continuation():
    with pytest.raises(UserError, match="eval.max_length"):
        adapter(tiny_model(), max_length=8).loglikelihood(requests("loglikelihood", [("a", " continuation too long")]))


@pytest.mark.parametrize("mixer", ["interdomain", "s4d", "softmax"])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_batched_equals_unbatched(mixer, dtype, tolerance):
    model = tiny_model(mixer, dtype)
    words = TEXT.split()
    cases = [(" ".join(words[:i]), " " + " ".join(words[i : i + 1 + i % 3])) for i in range(1, 11)]
    batched = adapter(model, batch_size=4).loglikelihood(requests("loglikelihood", cases))
    single = adapter(model, batch_size=1).loglikelihood(requests("loglikelihood", cases))
    for (logprob_b, greedy_b), (logprob_s, greedy_s), case in zip(batched, single, cases):
        assert abs(logprob_b - logprob_s) <= tolerance * max(1.0, abs(logprob_s)), case
        assert greedy_b == greedy_s, case


def test_rolling_equals_direct_sum_in_one_window():
    model = tiny_model()
    (total,) = adapter(model, max_length=128).loglikelihood_rolling(requests("loglikelihood_rolling", [(TEXT,)]))
    expected, _ = direct_logprob(model, [PREFIX], encode(TEXT))
    assert len(encode(TEXT)) <= 128
    assert abs(total - expected) < 1e-10


class BigramLM(nn.Module):
    """Logits depend on the current token only, so any split into windows gives the same total."""

    def __init__(self, vocab=256, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.table = nn.Embedding(vocab, vocab).double()

    def forward(self, tokens, states=None):
        return self.table(tokens), None

    def step(self, token, states=None):
        return self.table(token), None


def test_rolling_scores_every_token_once():
    model = BigramLM()
    text = TEXT * 3
    (total,) = adapter(model, max_length=16, batch_size=3).loglikelihood_rolling(
        requests("loglikelihood_rolling", [(text,)]))
    expected, _ = direct_logprob(model, [PREFIX], encode(text))
    assert len(encode(text)) > 10 * 16   # many windows
    assert abs(total - expected) < 1e-9


def test_rolling_empty_text_is_zero():
    (total,) = adapter(BigramLM()).loglikelihood_rolling(requests("loglikelihood_rolling", [("",)]))
    assert total == 0.0


class NextByteLM(BigramLM):
    """Greedy decoding after byte b always gives b + 1."""

    def __init__(self):
        super().__init__()
        with torch.no_grad():
            self.table.weight.copy_(torch.eye(256, dtype=torch.float64).roll(1, dims=1))


class ByteTokenizerWithEos(ByteTokenizer):
    eos_id = ord("e")


def generate(lm, context, **gen_kwargs):
    (text,) = lm.generate_until(requests("generate_until", [(context, gen_kwargs)]))
    return text


def test_generate_stops_at_stop_string():
    assert generate(adapter(NextByteLM()), "a", until=["e"], max_gen_toks=10) == "bcd"
    assert generate(adapter(NextByteLM()), "a", until="cd", max_gen_toks=10) == "b"


def test_generate_stops_at_max_tokens():
    assert generate(adapter(NextByteLM()), "a", until=["z"], max_gen_toks=3) == "bcd"


def test_generate_stops_at_eos():
    lm = adapter(NextByteLM(), tokenizer=ByteTokenizerWithEos())
    assert generate(lm, "a", until=[], max_gen_toks=10) == "bcd"


@pytest.mark.parametrize("mixer", ["interdomain", "softmax"])
def test_generate_matches_greedy_forward(mixer):
    """Decoding from the mixer states after one prefill equals re-running the whole sequence each step."""
    model = tiny_model(mixer)
    tokens = encode("Shall I compare")
    expected = []
    with torch.no_grad():
        for _ in range(12):
            logits, _ = model(torch.tensor([tokens + expected]))
            expected.append(int(logits[0, -1].argmax()))
    text = generate(adapter(model), "Shall I compare", until=[], max_gen_toks=12)
    assert text == ByteTokenizer().decode(expected)


def test_prefix_token_required_without_eos():
    with pytest.raises(ValueError, match="prefix_token_id"):
        DecoderLMAdapter(BigramLM(), ByteTokenizer(), max_length=16)
