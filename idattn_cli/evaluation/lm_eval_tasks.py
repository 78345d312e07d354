"""Select lm-evaluation-harness tasks, check that their data can load, and flatten their results.

- `load_task_manager(names, include_path)` returns lm-eval's `TaskManager` after checking every name,
  and raises `UserError` for an unknown name or a missing `include_path` folder.
- `require_task_data(manager, names)` raises `UserError` within seconds when a selected task reads a
  Hugging Face Hub dataset that is not in the local cache while the hub is offline or unreachable.
- `metric_rows(results)` turns the output of `lm_eval.simple_evaluate` into one dict per task and
  metric. `average_row(rows)` averages the accuracies as the paper's downstream table does.

The paper (Kiyohara et al., arXiv:2605.24330) reports zero-shot accuracy on eight tasks, acc_norm for
HellaSwag and ARC-Challenge and acc elsewhere, their unweighted mean, and the perplexities of LAMBADA
and WikiText-2. `PAPER_METRICS` lists those metrics per lm-eval task.
"""

import difflib
import functools
import logging
import math
from pathlib import Path

from lm_eval.tasks import TaskManager
from lm_eval.tasks._index import Kind

from ..data.hub import require_hub
from ..errors import UserError

log = logging.getLogger("idattn")

PAPER_METRICS = {
    "lambada_openai": ("acc", "perplexity"),
    "piqa": ("acc",),
    "hellaswag": ("acc_norm",),
    "winogrande": ("acc",),
    "arc_easy": ("acc",),
    "arc_challenge": ("acc_norm",),
    "social_iqa": ("acc",),
    "boolq": ("acc",),
    "wikitext": ("word_perplexity", "byte_perplexity", "bits_per_byte"),
}
ACCURACY_METRICS = ("acc", "acc_norm")
AVERAGE_TASK = "average"

OFFLINE_ALTERNATIVE = ("for offline use, write a task YAML with `dataset_path: json` and "
                       "`dataset_kwargs: {data_files: {<split>: /abs/path/docs.jsonl}}` in a folder, pass it as "
                       "eval.include_path=<folder> and select the task with eval.tasks=[<its task name>]")


# --- task selection -------------------------------------------------------------------------------

def load_task_manager(names: list[str], include_path: str | None) -> TaskManager:
    """Return a TaskManager whose index contains every name in `names`, else raise UserError.

    lm-eval's built-in index takes seconds to build (9 s with lm-eval 0.4.13 on a busy 2-core CPU),
    so when `include_path` alone defines all the names as plain tasks, only that folder is indexed.
    """
    folders = _include_folders(include_path)
    if folders:
        own = TaskManager(include_path=list(folders), include_defaults=False)
        if all(_kind(own, name) in (Kind.TASK, Kind.PY_TASK) for name in names):
            return own
    manager = _full_task_manager(folders, _folder_signature(folders))
    for name in names:
        if _kind(manager, name) is None:
            raise UserError(_unknown_task_message(manager, name, include_path))
    return manager


def _include_folders(include_path: str | None) -> tuple[str, ...]:
    if not include_path:
        return ()
    folder = Path(include_path).expanduser().resolve()
    if not folder.is_dir():
        raise UserError(f"eval.include_path={include_path} is not a folder; set it to a folder of lm-eval "
                        "task YAMLs, or to null for the built-in tasks only")
    return (str(folder),)


def _folder_signature(folders: tuple[str, ...]) -> tuple:
    """Return the YAML files under `folders` with their modification times, so a changed file rebuilds the index."""
    return tuple((str(path), path.stat().st_mtime_ns)
                 for folder in folders for path in sorted(Path(folder).rglob("*.yaml")))


@functools.lru_cache(maxsize=2)
def _full_task_manager(folders: tuple[str, ...], signature: tuple) -> TaskManager:
    """Index lm-eval's built-in tasks plus `folders`, once per process and folder state."""
    log.info("indexing the lm-eval tasks%s", f" and {', '.join(folders)}" if folders else "")
    return TaskManager(include_path=list(folders) or None)


def _kind(manager: TaskManager, name: str) -> Kind | None:
    entry = manager.task_index.get(name)
    return entry.kind if entry is not None else None


def _unknown_task_message(manager: TaskManager, name: str, include_path: str | None) -> str:
    close = difflib.get_close_matches(name, manager.all_tasks, n=3)
    hint = f" (close names: {', '.join(close)})" if close else ""
    listing = "lm-eval ls tasks" + (f" --include_path {include_path}" if include_path else "")
    return (f"unknown lm-eval task {name!r}{hint}; list the valid names with `{listing}`, or add a task "
            "YAML to a folder given as eval.include_path")


# --- data availability ----------------------------------------------------------------------------

def require_task_data(manager: TaskManager, names: list[str]) -> None:
    """Raise UserError if a task reads a hub dataset that is not cached while the hub is unusable.

    The message names every such task with its dataset, and the hub is probed at most once.
    """
    missing = []
    for task, config in leaf_task_configs(manager, names):
        dataset = hub_dataset(config)
        if dataset is not None and not is_cached(dataset):
            subset = f" ({config['dataset_name']})" if config.get("dataset_name") else ""
            missing.append(f"dataset {dataset}{subset} of lm-eval task {task!r}")
    if missing:
        require_hub(", ".join(missing), OFFLINE_ALTERNATIVE)


def leaf_task_configs(manager: TaskManager, names: list[str]) -> list[tuple[str, dict]]:
    """Return (task name, raw YAML config) of every task that `names` selects, groups and tags expanded."""
    leaves, pending, seen = [], list(names), set()
    while pending:
        item = pending.pop(0)
        if isinstance(item, dict):                     # an inline task inside a group's task list
            if "dataset_path" in item or item.get("task") not in manager.task_index:
                leaves.append((str(item.get("task")), item))
                continue
            item = item["task"]
        if item in seen or item not in manager.task_index:
            continue
        seen.add(item)
        entry = manager.task_index[item]
        if entry.kind == Kind.TAG:
            pending.extend(sorted(entry.tags))
        elif entry.kind == Kind.GROUP:
            members = (entry.cfg or {}).get("task") or []
            pending.extend(members if isinstance(members, list) else [members])
        else:
            leaves.append((item, entry.cfg or {}))
    return leaves


def hub_dataset(config: dict) -> str | None:
    """Return the hub dataset id that a task config loads, or None for local files and Python tasks."""
    path = config.get("dataset_path")
    if not isinstance(path, str) or "class" in config or config.get("custom_dataset"):
        return None
    if path in _local_builders() or Path(path).expanduser().exists():
        return None   # NOTE: remote data_files (URLs) of a packaged builder such as json are not checked
    return path


def _local_builders() -> set[str]:
    """Return the names of the builders that `datasets` ships for local files (json, csv, parquet, ...)."""
    try:   # a private table of datasets (checked with 5.2), so fall back to the common names
        from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
    except ImportError:
        return {"arrow", "csv", "json", "pandas", "parquet", "text"}
    return set(_PACKAGED_DATASETS_MODULES)


def is_cached(dataset: str) -> bool:
    """Return whether the hub cache or the datasets cache contains a copy of `dataset` (any config or revision)."""
    from datasets import config as datasets_config
    from huggingface_hub import constants

    hub_copy = Path(constants.HF_HUB_CACHE) / f"datasets--{dataset.replace('/', '--')}"
    datasets_copy = Path(datasets_config.HF_DATASETS_CACHE) / dataset.replace("/", "___")
    return hub_copy.is_dir() or datasets_copy.is_dir()


# --- results --------------------------------------------------------------------------------------

def metric_rows(results: dict) -> list[dict]:
    """Return one dict per task and metric of `simple_evaluate`'s output, groups included.

    Keys of each row:
        task, metric     `,<filter>` is appended to the metric unless the filter is `none`
        value, stderr    stderr is None where lm-eval gives N/A
        reported         the metric is in PAPER_METRICS, or the task is not in PAPER_METRICS at all
        group            the row aggregates the tasks of an lm-eval group
        task_version, num_fewshot, n_samples (documents scored)
    """
    rows = []
    groups = set(results.get("groups", {}))
    for task, values in results["results"].items():
        samples = results.get("n-samples", {}).get(task, {})
        for key, value in values.items():
            metric, comma, filter_name = key.partition(",")
            if not comma or metric.endswith("_stderr") or not _is_number(value):
                continue   # metrics are `<metric>,<filter>`; `alias`, `name` and `sample_len` are not
            stderr = values.get(f"{metric}_stderr,{filter_name}")
            rows.append({
                "task": task,
                "metric": metric if filter_name == "none" else f"{metric},{filter_name}",
                "value": float(value),
                "stderr": float(stderr) if _is_number(stderr) else None,
                "reported": metric in PAPER_METRICS.get(task, (metric,)),
                "group": task in groups,
                "task_version": results.get("versions", {}).get(task),
                "num_fewshot": results.get("n-shot", {}).get(task),
                "n_samples": samples.get("effective"),
            })
    return rows


def average_row(rows: list[dict]) -> dict | None:
    """Return the mean accuracy over the tasks (not groups) that report one, or None if none does.

    Each task contributes one accuracy, `accuracy_metric(task)`. With the paper's eight accuracy tasks
    selected, this is the paper's `average` column.
    """
    accuracies = {row["task"]: row["value"] for row in rows
                  if not row["group"] and row["metric"] == accuracy_metric(row["task"])}
    if not accuracies:
        return None
    return {"task": AVERAGE_TASK, "metric": "acc", "value": sum(accuracies.values()) / len(accuracies),
            "stderr": None, "reported": True, "group": False, "task_version": None, "num_fewshot": None,
            "n_samples": None, "averaged_tasks": ",".join(sorted(accuracies))}


def accuracy_metric(task: str) -> str:
    """Return the accuracy metric that the paper reports for `task`: acc_norm or acc (acc for other tasks)."""
    paper = [metric for metric in PAPER_METRICS.get(task, ()) if metric in ACCURACY_METRICS]
    return paper[0] if paper else "acc"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
