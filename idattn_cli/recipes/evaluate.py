"""`idattn eval`: validation perplexity and lm-evaluation-harness tasks of a trained run.

`evaluate(cfg, overrides)` resolves the run (`eval.run`, else the newest run of this config, trained
first if there is none), then computes

1. validation loss (nats per token), perplexity and bits per byte on the run's validation split. The
   documents are joined into one token stream as the training datamodule joins them, and cut into
   windows of the training context, the same windows as the final validation of `idattn train`;
2. the `eval.tasks` of lm-evaluation-harness, scored in process by `DecoderLMAdapter`.

Task names and data are checked before any training or scoring, so an unknown task or a hub dataset
on an offline machine fails in seconds. Every metric becomes one row of `results/eval.csv` (long
format). An `average` row adds the mean accuracy, the last column of the downstream table of the
Interdomain Attention paper (Kiyohara et al., arXiv:2605.24330).
"""

import json
import logging
import math
import sys
from importlib import metadata
from pathlib import Path

import lm_eval
import torch
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from .. import provenance
from ..data.sources import load_documents
from ..data.packing import DOCUMENT_SEPARATOR, encode_documents, encode_documents_limited
from ..data.tokenizers import build_tokenizer
from ..errors import UserError
from ..evaluation import lm_eval_tasks
from ..evaluation.lm_eval_adapter import DecoderLMAdapter
from ..evaluation.perplexity import document_windows, token_losses
from ..results.store import append_row
from ..training.checkpoint import load_model
from .runs import check_run_id, resolve_run, warn_unused_overrides

log = logging.getLogger("idattn")

VALIDATION_TASK = "validation"
METRIC_COLUMNS = ("task", "metric", "value", "stderr", "reported", "group", "task_version", "num_fewshot",
                  "n_samples", "averaged_tasks")


def evaluate(cfg: DictConfig, overrides: list[str] | None = None) -> list[dict]:
    """Evaluate the run of `cfg` and return the rows appended to results/eval.csv."""
    settings = eval_settings(cfg.eval)
    check_run_id(cfg.paths.results_dir, cfg.eval.run)
    warn_unused_overrides(cfg.eval.run, overrides)
    manager = None
    if settings["tasks"]:   # checked before resolve_run, which may train for minutes
        manager = lm_eval_tasks.load_task_manager(settings["tasks"], settings["include_path"])
        lm_eval_tasks.require_task_data(manager, settings["tasks"])

    run = resolve_run(cfg, overrides, run_id=cfg.eval.run)
    model, run_config = load_model(run.checkpoint, map_location=settings["device"])
    tokenizer = build_tokenizer(run_config["tokenizer"], cfg.paths.data_dir)
    settings["max_length"] = settings["max_length"] or run_config["model"]["context_length"]
    log.info("eval of run %s on %s: validation split, then %s", run.run_id, settings["device"],
             ", ".join(settings["tasks"]) or "no lm-eval tasks")

    rows = validation_rows(model, tokenizer, run_config, settings, cfg.paths.data_dir)
    if manager is not None:
        rows += task_rows(model, tokenizer, manager, settings)

    identity, context = _shared_columns(run, run_config, settings)
    context["overrides"] = " ".join(overrides or [])
    full_rows = [{**identity, **{key: row.get(key) for key in METRIC_COLUMNS}, **context} for row in rows]
    path = Path(cfg.paths.results_dir) / "eval.csv"
    for row in full_rows:
        append_row(path, row)
    log.info("%d rows appended to %s", len(full_rows), path)
    return full_rows


def task_rows(model, tokenizer, manager, settings: dict) -> list[dict]:
    """Run the lm-eval tasks in process; return their metric rows and the average accuracy row."""
    results = lm_eval.simple_evaluate(
        model=_adapter(model, tokenizer, settings), tasks=settings["tasks"], num_fewshot=settings["num_fewshot"],
        limit=settings["limit"], batch_size=settings["batch_size"], device=settings["device"],
        bootstrap_iters=settings["bootstrap_iters"], log_samples=False, task_manager=manager)
    rows = lm_eval_tasks.metric_rows(results)
    average = lm_eval_tasks.average_row(rows)
    return rows + ([average] if average else [])


# --- settings -------------------------------------------------------------------------------------

def eval_settings(eval_cfg: DictConfig) -> dict:
    """Return the `eval` config group as a checked dict; raise UserError for an invalid value."""
    settings = OmegaConf.to_container(eval_cfg, resolve=True)
    tasks = settings.get("tasks") or []
    settings["tasks"] = [name.strip() for name in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    _require(settings, "batch_size", lambda v: _is_int(v) and v > 0, "a positive integer")
    for key in ("bootstrap_iters", "num_fewshot"):
        _require(settings, key, lambda v: _is_int(v) and v >= 0, "a non-negative integer")
    _require(settings, "max_length", lambda v: v is None or (_is_int(v) and v > 0),
             "a positive integer, or null for the run's context length")
    _require(settings, "validation_max_windows", lambda v: v is None or (_is_int(v) and v >= 0),
             "a non-negative integer (0 skips the validation split), or null for the whole split")
    _require(settings, "limit", lambda v: v is None or (_is_int(v) and v > 0)
             or (isinstance(v, float) and 0 < v < 1), "a document count, a fraction below 1, or null for all")
    settings["device"] = _device(str(settings["device"]))
    return settings


def _require(settings: dict, key: str, is_valid, requirement: str) -> None:
    if not is_valid(settings[key]):
        raise UserError(f"invalid value {settings[key]!r} for eval.{key}; set it to {requirement}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"eval.device={name} but no CUDA device is available; set eval.device=cpu or auto")
    return name


def _adapter(model, tokenizer, settings: dict) -> DecoderLMAdapter:
    # Without an end-of-document token, a document starts after the datamodule's separator, so its
    # last token conditions the first token of a text.
    prefix = tokenizer.eos_id if tokenizer.eos_id is not None else tokenizer.encode(DOCUMENT_SEPARATOR)[-1]
    return DecoderLMAdapter(model, tokenizer, max_length=settings["max_length"], batch_size=settings["batch_size"],
                            device=settings["device"], prefix_token_id=prefix)


# --- validation split -----------------------------------------------------------------------------

def validation_tokens(documents, tokenizer, data_cfg: dict) -> tuple[list[int], int]:
    """Return (token stream, UTF-8 bytes it encodes) of the validation split, as the training datamodule builds it.

    Streaming sources keep only the first data.validation_max_tokens tokens, as their datamodule does.
    """
    if data_cfg.get("streaming"):
        tokens, data = encode_documents_limited(documents, tokenizer, data_cfg.get("validation_max_tokens"))
    else:
        tokens, data = encode_documents(documents, tokenizer)
    return tokens, len(data)


def validation_rows(model, tokenizer, run_config: dict, settings: dict, data_dir) -> list[dict]:
    """Score the validation split in windows of the training context: loss, perplexity, bits per byte."""
    max_windows = settings["validation_max_windows"]
    if max_windows == 0:
        return []
    data_name = run_config["data"]["name"]
    documents = load_documents(run_config["data"], "validation", data_dir)
    tokens, n_bytes = validation_tokens(documents, tokenizer, run_config["data"])
    context = run_config["model"]["context_length"]
    if len(tokens) <= context:
        raise UserError(f"the validation split of data={data_name} has {len(tokens)} tokens, not more than the "
                        f"training context of {context}; set eval.validation_max_windows=0 to skip it")
    windows = document_windows([tokens], context, max_windows=max_windows or sys.maxsize)   # (n, context + 1)
    log.info("validation split of %s: %d windows of %d tokens", data_name, len(windows), context)
    losses = token_losses(model, windows, settings["batch_size"], settings["device"])        # (n, context) nats
    loss = float(losses.mean())
    bytes_per_token = n_bytes / len(tokens)   # over the whole split, as `idattn train` converts val_bpb
    values = {"loss": loss, "perplexity": math.exp(loss), "bits_per_byte": loss / math.log(2) / bytes_per_token}
    return [{"task": VALIDATION_TASK, "metric": metric, "value": value, "stderr": None, "reported": True,
             "group": False, "task_version": None, "num_fewshot": None, "n_samples": len(windows)}
            for metric, value in values.items()]


# --- rows and table -------------------------------------------------------------------------------

def _shared_columns(run, run_config: dict, settings: dict) -> tuple[dict, dict]:
    """Return the columns that every row of one evaluation shares: those before the metric, those after."""
    identity = {
        "eval_id": provenance.new_run_id(),
        "timestamp": provenance.utc_timestamp(),
        "command": "eval",
        "run_id": run.run_id,
    }
    context = {
        "limit": settings["limit"],
        "batch_size": settings["batch_size"],
        "max_length": settings["max_length"],
        "device": settings["device"],
        "model": run_config["model"]["name"],
        "mixer": run_config["mixer"]["name"],
        "data": run_config["data"]["name"],
        "tokenizer": run_config["tokenizer"]["name"],
        "seed": run_config["seed"],
        "checkpoint": str(run.checkpoint),
        "git_revision": provenance.git_revision(),
        **provenance.versions(),
        "lm_eval_version": metadata.version("lm_eval"),
        "eval_settings": json.dumps(settings, sort_keys=True),
        "config": json.dumps(run_config, sort_keys=True),   # the evaluated run's config, as in the other CSVs
    }
    return identity, context


def eval_table(rows: list[dict]) -> Table:
    """Build the summary table of one `idattn eval`: the reported metrics of each task, then the average.

    `rows` are those that `evaluate` returns, or those of one eval_id read back from eval.csv (strings).
    """
    run_ids = sorted({row["run_id"] for row in rows})
    table = Table(title=f"eval {rows[0]['eval_id']} of run {', '.join(run_ids)}" if rows else "eval: no rows")
    for column in ("task", "metric", "value", "stderr", "n"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for row in rows:
        if row["reported"] in (True, "True"):
            table.add_row(row["task"], row["metric"], _number(row["value"]), _number(row["stderr"]),
                          "" if row["n_samples"] is None else str(row["n_samples"]))
    return table


def _number(value) -> str:
    if value is None or value == "":
        return ""
    value = float(value)
    return f"{value:.4g}" if abs(value) >= 1000 else f"{value:.4f}"
