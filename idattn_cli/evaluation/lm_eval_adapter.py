"""lm-evaluation-harness adapter: an idattn `DecoderLM` and tokenizer as an in-process `lm_eval` model.

Contract of `DecoderLMAdapter`, the three request types of lm-eval's `LM`:

- `loglikelihood`: (context, continuation) -> (log p(continuation | context) in nats, whether greedy
  decoding reproduces the continuation). lm-eval's `TemplateLM` encodes the pair: a trailing space of
  the context moves to the continuation, and an empty context becomes `[prefix_token_id]`. Context plus
  continuation keep their last `max_length + 1` tokens, so the model reads at most `max_length` tokens.
  A continuation longer than `max_length` raises `UserError`.
- `loglikelihood_rolling`: text -> log p(text) in nats, scored in disjoint windows of `max_length`
  tokens by lm-eval's `get_rolling_token_windows` (each window after the first conditions on one token
  of the previous window, the prefix token conditions the first). Every token is scored once.
- `generate_until`: (context, generation kwargs) -> greedy continuation, cut before the first stop
  string in `until`, ended by the tokenizer's `eos_id` or after `max_gen_toks` tokens.

Requests are scored in batches of `batch_size`, longest first, right-padded. The mixers are causal, so
the padding after a sequence cannot change the logits of its own positions. Log-probabilities are
taken over every row of the model's output layer, which may be wider than the tokenizer's vocabulary.
"""

import logging

import torch
from lm_eval.api.model import TemplateLM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from ..errors import UserError

log = logging.getLogger("idattn")

PAD_TOKEN = 0   # any valid id: right padding is never read by the positions that are scored


class DecoderLMAdapter(TemplateLM):
    """An idattn `DecoderLM` plus tokenizer, scored and decoded in process by lm-evaluation-harness."""

    def __init__(self, model, tokenizer, *, max_length: int, batch_size: int = 8, device: str = "cpu",
                 max_gen_toks: int = 256, prefix_token_id: int | None = None):
        """Wrap `model` (forward(tokens) -> (logits, states), step(token, states)) and `tokenizer`.

        `prefix_token_id` conditions the first token of a text (empty contexts, rolling windows). It
        defaults to the tokenizer's `eos_id`, so it is required when the tokenizer has none.
        """
        super().__init__()
        if max_length < 1 or batch_size < 1:
            raise ValueError(f"max_length={max_length} and batch_size={batch_size} must be positive")
        self._device = torch.device(device)
        self.model = model.to(self._device).eval()
        self.tokenizer = tokenizer
        self._max_length = max_length
        self.batch_size = batch_size
        self.max_gen_toks = max_gen_toks
        self._eos_id = getattr(tokenizer, "eos_id", None)
        self._prefix_id = prefix_token_id if prefix_token_id is not None else self._eos_id
        if self._prefix_id is None:
            raise ValueError("the tokenizer has no eos_id, so pass prefix_token_id: the token that "
                             "precedes a document in training")

    @property
    def eot_token_id(self) -> int | None:
        return self._eos_id

    @property
    def prefix_token_id(self) -> int:
        return self._prefix_id

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return self.tokenizer.encode(string)

    def tok_decode(self, tokens) -> str:
        return self.tokenizer.decode(tokens)

    # --- scoring ----------------------------------------------------------------------------------

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        """Score `(request strings or None, context ids, continuation ids)` triples in length-sorted batches."""
        sequences = [self._model_input(context, continuation) for _, context, continuation in requests]
        order = sorted(range(len(requests)), key=lambda i: -len(sequences[i][0]))
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            scores = self._score_batch([sequences[i] for i in batch])
            for index, score in zip(batch, scores):
                results[index] = score
                if requests[index][0] is not None:
                    self.cache_hook.add_partial("loglikelihood", requests[index][0], score)
        return results

    def _model_input(self, context: list[int], continuation: list[int]) -> tuple[list[int], list[int]]:
        """Return (input ids, continuation ids): the last `max_length + 1` tokens of the pair, minus the last."""
        if len(continuation) > self.max_length:
            raise UserError(f"a continuation of {len(continuation)} tokens is longer than the evaluation "
                            f"context max_length={self.max_length}; set eval.max_length to at least "
                            f"{len(continuation)}")
        whole = (context + continuation)[-(self.max_length + 1):]
        return whole[:-1], continuation

    @torch.no_grad()
    def _score_batch(self, sequences: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """Sum the continuation log-probabilities of each (input ids, continuation ids) pair of one batch."""
        width = max(len(inputs) for inputs, _ in sequences)
        tokens = torch.full((len(sequences), width), PAD_TOKEN, dtype=torch.long)   # (batch, width)
        for row, (inputs, _) in enumerate(sequences):
            tokens[row, : len(inputs)] = torch.tensor(inputs, dtype=torch.long)
        logits, _ = self.model(tokens.to(self.device))                              # (batch, width, vocab)

        scores = []
        for row, (inputs, continuation) in enumerate(sequences):
            if not continuation:
                scores.append((0.0, True))
                continue
            end = len(inputs)
            positions = logits[row, end - len(continuation) : end]                   # (n_cont, vocab)
            positions = positions.to(torch.promote_types(positions.dtype, torch.float32))
            targets = torch.tensor(continuation, device=positions.device)
            logprobs = positions.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
            is_greedy = bool((positions.argmax(-1) == targets).all())
            scores.append((float(logprobs.double().sum()), is_greedy))
        return scores

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Return log p(text) in nats per request, the sum over disjoint windows of `max_length` tokens."""
        windows, owners = [], []
        for index, (text,) in enumerate(request.args for request in requests):
            token_windows = get_rolling_token_windows(token_list=self.tok_encode(text),
                                                      prefix_token=self.prefix_token_id,
                                                      max_seq_len=self.max_length, context_len=1)
            for context, continuation in map(make_disjoint_window, token_windows):
                windows.append((None, context, continuation))
                owners.append(index)

        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, self._loglikelihood_tokens(windows)):
            totals[owner] += logprob
        for request, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    # --- generation -------------------------------------------------------------------------------

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Decode greedily for each (context, generation kwargs) request, one request at a time."""
        # NOTE: one sequence at a time, because a batch of prompts of different lengths would need left
        # padding, and padding before a prompt would enter the fixed-size state of the recurrent mixers.
        outputs = []
        for request in requests:
            context, gen_kwargs = request.args
            gen_kwargs = dict(gen_kwargs or {})
            if gen_kwargs.get("do_sample") or (gen_kwargs.get("temperature") or 0) > 0:
                log.warning("generate_until decodes greedily; ignoring do_sample=%s, temperature=%s",
                            gen_kwargs.get("do_sample"), gen_kwargs.get("temperature"))
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen_kwargs.get("max_gen_toks", self.max_gen_toks))
            text = self._greedy_decode(context, until, max_new)
            self.cache_hook.add_partial("generate_until", request.args, text)
            outputs.append(text)
        return outputs

    @torch.no_grad()
    def _greedy_decode(self, context: str, until: list[str], max_new_tokens: int) -> str:
        """Prefill the context with one forward pass, then decode token by token from the mixer states."""
        prompt = self.tok_encode(context) or [self.prefix_token_id]
        prompt = prompt[-max(1, self.max_length - max_new_tokens):]   # room for the new tokens, as lm-eval's HFLM
        logits, states = self.model(torch.tensor([prompt], device=self.device))
        next_logits = logits[:, -1]                                   # (1, vocab)
        vocab = self.tokenizer.vocab_size   # output rows past the tokenizer's vocabulary cannot be decoded

        generated: list[int] = []
        text = ""
        for _ in range(max_new_tokens):
            token = next_logits[:, :vocab].argmax(-1)                 # (1,)
            if self._eos_id is not None and int(token) == self._eos_id:
                break
            generated.append(int(token))
            text = self.tok_decode(generated)
            stops = [text.find(stop) for stop in until if stop and stop in text]
            if stops:
                return text[: min(stops)]
            next_logits, states = self.model.step(token, states)
        return text
