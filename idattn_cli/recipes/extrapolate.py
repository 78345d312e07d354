"""`idattn extrapolate`: perplexity of a trained run at multiples of its training context.

For each factor f, the run is scored on windows of round(f * L) tokens (L = the training context)
cut from the validation documents, overall and per position bucket. A fixed-state mixer should stay
flat past L. Softmax attention applies its RoPE unchanged at positions beyond L (no interpolation
or rescaling), which is how the long-context comparison of softmax baselines is usually run.
"""

import json
import logging
import math
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .. import provenance
from ..config import compose_config
from ..data.sources import load_documents
from ..data.tokenizers import build_tokenizer
from ..errors import UserError
from ..evaluation.perplexity import bucket_losses, document_windows, token_losses
from ..results.store import append_row
from ..training.checkpoint import load_model
from .runs import resolve_run

log = logging.getLogger("idattn")


def parse_factors(factors) -> list[float]:
    """Return the factors as sorted unique floats; raise UserError unless each is a positive number."""
    values = []
    for factor in factors:
        try:
            value = float(factor)
        except (TypeError, ValueError):
            value = math.nan
        if not value > 0 or math.isinf(value):
            raise UserError(f"invalid context factor {factor!r}; give positive numbers, e.g. --factors 1,2,3.5")
        values.append(value)
    if not values:
        raise UserError("no context factors given; set extrapolate.factors, e.g. --factors 1,2,3.5")
    return sorted(set(values))


def extrapolate(cfg: DictConfig, overrides: list[str]) -> list[dict]:
    """Score the run at every factor x corpus and return the rows (appended to extrapolation.csv)."""
    settings = cfg.extrapolate
    factors = parse_factors(settings.factors)
    run = resolve_run(cfg, overrides, run_id=settings.run)
    model, run_config = load_model(run.checkpoint)
    device = _device(settings.device)
    model.to(device)
    tokenizer = build_tokenizer(run_config["tokenizer"], cfg.paths.data_dir)
    context = run_config["model"]["context_length"]
    lengths = {factor: max(1, round(factor * context)) for factor in factors}
    bucket_size = settings.bucket_size or max(1, context // 2)

    rows = []
    for corpus, data_cfg in _corpora(cfg, run_config):
        documents, bytes_per_token = _tokenized_documents(data_cfg, settings, tokenizer, cfg.paths.data_dir,
                                                          max(lengths.values()))
        for factor in factors:
            length = lengths[factor]
            windows = document_windows(documents, length, max_windows=max(1, settings.max_tokens // length))
            log.info("run %s on %s: factor %g (%d tokens), %d windows", run.run_id, corpus, factor, length, len(windows))
            losses = token_losses(model, windows, settings.batch_size, device)
            row = _row(cfg, run, run_config, corpus, factor, length, losses, bucket_size, bytes_per_token, overrides)
            append_row(Path(cfg.paths.results_dir) / "extrapolation.csv", row)
            rows.append(row)
    return rows


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _corpora(cfg: DictConfig, run_config: dict):
    """Yield (name, data config) pairs: the run's own data, or each corpus named in extrapolate.data."""
    names = cfg.extrapolate.data
    if names is None:
        yield run_config["data"]["name"], run_config["data"]
        return
    for name in [names] if isinstance(names, str) else names:
        extra = [f"data.path={cfg.extrapolate.data_path}"] if cfg.extrapolate.data_path else []
        data_cfg = compose_config([f"data={name}", *extra]).data
        yield name, OmegaConf.to_container(data_cfg)


def _tokenized_documents(data_cfg: dict, settings: DictConfig, tokenizer, data_dir, max_length: int):
    """Tokenize documents of the split until the longest window length has max_tokens targets.

    Return the token lists and the corpus's UTF-8 bytes per token (to convert nats to bits per byte).
    """
    documents, n_bytes, n_tokens, usable = [], 0, 0, 0
    for text in load_documents(data_cfg, settings.split, data_dir):
        tokens = tokenizer.encode(text)
        documents.append(tokens)
        n_bytes, n_tokens = n_bytes + len(text.encode("utf-8")), n_tokens + len(tokens)
        usable += max(0, (len(tokens) - 1) // max_length) * max_length
        if usable >= settings.max_tokens:
            break
    if usable == 0:
        raise UserError(f"no {settings.split} document of data {data_cfg['name']} is longer than "
                        f"{max_length} tokens; lower the largest factor or choose a long-document corpus")
    return documents, n_bytes / n_tokens


def _row(cfg, run, run_config, corpus, factor, length, losses, bucket_size, bytes_per_token, overrides) -> dict:
    loss = float(losses.mean())
    buckets = bucket_losses(losses, bucket_size)
    return {
        "extrapolation_id": provenance.new_run_id(),
        "timestamp": provenance.utc_timestamp(),
        "command": "extrapolate",
        "run_id": run.run_id,
        "model": run_config["model"]["name"],
        "mixer": run_config["mixer"]["name"],
        "data": corpus,
        "split": cfg.extrapolate.split,
        "seed": run_config["seed"],
        "train_context": run_config["model"]["context_length"],
        "factor": factor,
        "eval_length": length,
        "n_windows": losses.shape[0],
        "n_tokens": losses.numel(),
        "loss": loss,
        "ppl": math.exp(loss),
        "bpb": loss / math.log(2) / bytes_per_token,
        "bucket_size": bucket_size,
        "bucket_start": json.dumps([bucket["start"] for bucket in buckets]),
        "bucket_ppl": json.dumps([round(bucket["ppl"], 6) for bucket in buckets]),
        "git_revision": provenance.git_revision(),
        **provenance.versions(),
        "overrides": " ".join(overrides),
        "settings": json.dumps(OmegaConf.to_container(cfg.extrapolate), sort_keys=True),
        "config": json.dumps(run_config, sort_keys=True),
    }
