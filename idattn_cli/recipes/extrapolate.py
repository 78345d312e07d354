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
from .runs import check_run_id, resolve_run, warn_unused_overrides

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
    if settings.split not in ("train", "validation"):
        raise UserError(f"invalid value {settings.split!r} for extrapolate.split; set it to validation or train")
    if settings.data is None and (settings.data_path or settings.data_overrides):
        raise UserError("extrapolate.data_path and extrapolate.data_overrides apply to the corpora of "
                        "extrapolate.data, which is unset; name a corpus, e.g. extrapolate.data=[local]")
    check_run_id(cfg.paths.results_dir, settings.run)
    warn_unused_overrides(settings.run, overrides)
    corpora = _corpora(cfg)   # composed before resolve_run, which may train for minutes
    run = resolve_run(cfg, overrides, run_id=settings.run)
    model, run_config = load_model(run.checkpoint)
    device = _device(settings.device)
    model.to(device)
    tokenizer = build_tokenizer(run_config["tokenizer"], cfg.paths.data_dir)
    context = run_config["model"]["context_length"]
    lengths = {factor: max(1, round(factor * context)) for factor in factors}
    bucket_size = settings.bucket_size or max(1, context // 2)

    rows = []
    for corpus, data_cfg in corpora or [(run_config["data"]["name"], run_config["data"])]:
        documents, bytes_per_token = _tokenized_documents(data_cfg, settings, tokenizer, cfg.paths.data_dir,
                                                          max(lengths.values()))
        for factor in factors:
            length = lengths[factor]
            windows = document_windows(documents, length, max_windows=max(1, settings.max_tokens // length))
            log.info("run %s on %s: factor %g (%d tokens), %d windows", run.run_id, corpus, factor, length, len(windows))
            losses = token_losses(model, windows, settings.batch_size, device)
            row = _row(cfg, run, run_config, corpus, factor, length, losses, bucket_size, bytes_per_token, overrides,
                       device)
            append_row(Path(cfg.paths.results_dir) / "extrapolation.csv", row)
            rows.append(row)
    return rows


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _corpora(cfg: DictConfig) -> list[tuple[str, dict]]:
    """Return (name, data config) of each corpus in extrapolate.data; [] means the run's own data."""
    names = cfg.extrapolate.data
    if names is None:
        return []
    extra = [f"data.path={cfg.extrapolate.data_path}"] if cfg.extrapolate.data_path else []
    extra += list(cfg.extrapolate.data_overrides or [])
    corpora = []
    for name in [names] if isinstance(names, str) else names:
        try:
            data_cfg = compose_config([f"data={name}", *extra]).data
        except UserError as error:
            raise UserError(f"extrapolate.data={name}: {error} (data.* keys of these corpora go in "
                            "extrapolate.data_overrides)") from error
        corpora.append((name, OmegaConf.to_container(data_cfg)))
    return corpora


def _tokenized_documents(data_cfg: dict, settings: DictConfig, tokenizer, data_dir, max_length: int):
    """Tokenize documents of the split until the longest window length has max_tokens targets.

    Return the token lists and the corpus's UTF-8 bytes per token (to convert nats to bits per byte).
    """
    documents, n_bytes, n_tokens, usable = [], 0, 0, 0
    try:
        for text in load_documents(data_cfg, settings.split, data_dir):
            tokens = tokenizer.encode(text)
            documents.append(tokens)
            n_bytes, n_tokens = n_bytes + len(text.encode("utf-8")), n_tokens + len(tokens)
            usable += max(0, (len(tokens) - 1) // max_length) * max_length
            if usable >= settings.max_tokens:
                break
    except UserError as error:
        if settings.data is None:
            raise
        # the data loaders name data.* keys, which for these corpora are set through data_overrides
        raise UserError(f"{error} (for the corpora of extrapolate.data, set data.* keys through "
                        "extrapolate.data_overrides, e.g. 'extrapolate.data_overrides=[\"data.text_column=body\"]')") from error
    if usable == 0:
        raise UserError(f"no {settings.split} document of data={data_cfg['name']} is longer than "
                        f"{max_length} tokens; lower the largest factor or choose a long-document corpus")
    return documents, n_bytes / n_tokens


def _row(cfg, run, run_config, corpus, factor, length, losses, bucket_size, bytes_per_token, overrides, device) -> dict:
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
        "device": str(device),
        "bucket_start": json.dumps([bucket["start"] for bucket in buckets]),
        "bucket_ppl": json.dumps([round(bucket["ppl"], 6) for bucket in buckets]),
        "git_revision": provenance.git_revision(),
        **provenance.versions(),
        "overrides": " ".join(overrides),
        "settings": json.dumps(OmegaConf.to_container(cfg.extrapolate), sort_keys=True),
        "config": json.dumps(run_config, sort_keys=True),
    }
