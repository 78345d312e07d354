"""Summaries of the results CSVs, laid out as Kiyohara et al. (arXiv:2605.24330) lay out their tables.

Each builder takes the rows of one CSV and returns a DataFrame of display strings: mixers as columns,
and scales, context factors or tasks as rows. Only runs whose training config differs in the seed
alone are averaged, shown as "mean ± std (n)". Runs that differ in any other setting get their own
row or column, labelled with that setting (`label_setups`, `label_mixer_variants`). Where a cell was
run several times with the same seed and config, only the newest row counts.
"""

import json
import math

import pandas as pd

from ..errors import UserError
from ..recipes.runs import EXECUTION_KEYS
from . import paper

SCALES = ("tiny", "small", "125m", "350m", "760m", "1.3b")
MIXER_ORDER = ("interdomain", "s4d", "softmax")


def mean_std(values: pd.Series, digits: int) -> str:
    """Format the mean of `values`, and "± std (n)" when there are several."""
    values = values.dropna()
    if values.empty:
        return ""
    if len(values) == 1:
        return _number(values.iloc[0], digits)
    return f"{_number(values.mean(), digits)} ± {_number(values.std(ddof=1), digits)} ({len(values)})"


def _number(value: float, digits: int) -> str:
    """Fixed point with `digits` decimals, or 4 significant digits from 10,000 up (e.g. a perplexity of 5.8e+05)."""
    if value != value:   # NaN: a missing value in an older or damaged file
        return ""
    return f"{value:.4g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"


def newest(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Keep the newest row (by timestamp, then file order) of each combination of `keys`."""
    return frame.assign(_order=range(len(frame))).sort_values(["timestamp", "_order"]).drop_duplicates(keys, keep="last")


def _order(values, preferred) -> list:
    """Sort distinct values by the position of their first word in `preferred`, unknown ones last by name."""
    def key(value):
        first = str(value).split(" ")[0]
        return (preferred.index(first) if first in preferred else len(preferred), str(value))
    return sorted(set(values), key=key)


def _pivot(frame: pd.DataFrame, row: str, value: str, digits: int, rows_order=(), exact: bool = False) -> pd.DataFrame:
    """Rows `row`, one column per mixer, each cell the seeds' mean ± std of `value`.

    Rows follow `rows_order`: as given when `exact`, else by first word (see `_order`).
    """
    mixers = _order(frame["mixer"], MIXER_ORDER)
    table = {}
    keys = [key for key in rows_order if key in set(frame[row])] if exact else _order(frame[row], rows_order)
    for key in keys:
        part = frame[frame[row] == key]
        table[key] = {mixer: mean_std(part.loc[part["mixer"] == mixer, value], digits) for mixer in mixers}
    result = pd.DataFrame.from_dict(table, orient="index", columns=mixers)
    result.index.name = row
    return result.reset_index()


def runs_table(frame: pd.DataFrame, metric: str = "val_ppl") -> pd.DataFrame:
    """Validation metric per setup (rows: the scale, plus any setting that differs) and mixer (columns), over seeds."""
    frame = label_mixer_variants(label_setups(frame))
    frame = newest(frame, ["setup", "mixer", "seed"])
    order = [label for scale in _order(frame["model"], SCALES) for label in sorted(set(frame.loc[frame["model"] == scale, "setup"]))]
    return _pivot(frame, "setup", metric, 3 if metric == "val_ppl" else 4, order, exact=True).rename(columns={"setup": "model"})


def ablations_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Summarize each component's cells: validation loss, and the change in loss and perplexity against the full layer.

    Only the change in loss carries "± std" over seeds, which keeps the table within 80 columns; `n`
    counts the seeds.
    """
    frame = newest(label_setups(frame), ["component", "cell", "config_key"])
    rows = []
    for (component, model), part in frame.groupby(["component", "setup"], sort=False):
        cells = ["full"] + [cell for cell in dict.fromkeys(part["cell"]) if cell != "full"]
        for cell in cells:
            group = part[part["cell"] == cell]
            if group.empty:
                continue
            rows.append({"component": component, "model": model, "cell": cell,
                         "val loss": _number(group["val_loss"].mean(), 4),
                         "Δ loss": _signed(group["delta_loss"], 4, compact=True),
                         "Δ ppl": _signed(group["delta_ppl"].mean(), 3), "n": str(len(group))})
    table = pd.DataFrame(rows, columns=["component", "model", "cell", "val loss", "Δ loss", "Δ ppl", "n"])
    for column in ("component", "model"):   # a column with one value goes, and the title names it
        if table[column].nunique() == 1:
            table = table.drop(columns=column)
    return table


def _flatten(config, prefix: str = "") -> dict:
    """Flatten nested dicts to {"a.b": value}."""
    if not isinstance(config, dict):
        return {prefix: config}
    flat = {}
    for key, value in config.items():
        flat.update(_flatten(value, f"{prefix}{key}."  if isinstance(value, dict) else f"{prefix}{key}"))
    return {key.rstrip("."): value for key, value in flat.items()}


# training-config sections that make two runs of one mixer and seed comparable or not
SETUP_SECTIONS = ("model", "data", "tokenizer", "trainer", "optim")


def _setup(config_text: str) -> dict:
    """Return the flattened training setup of a run config (JSON), without seed and mixer."""
    try:
        config = json.loads(config_text) if config_text else {}
    except json.JSONDecodeError:
        config = {}
    flat = _flatten({key: config[key] for key in SETUP_SECTIONS if key in config})
    return {key: value for key, value in flat.items()
            if not (key.startswith("trainer.") and key.removeprefix("trainer.") in EXECUTION_KEYS)}


def label_setups(frame: pd.DataFrame) -> pd.DataFrame:
    """Add `setup`: the model name, plus "(key=value, ...)" for the settings that differ between runs of it.

    Runs that differ in any training setting other than seed and mixer (steps, data, width, learning
    rate...) then land in different rows or columns instead of being averaged together.
    """
    frame = frame.copy()
    configs = frame["config"] if "config" in frame else pd.Series([""] * len(frame), index=frame.index)
    setups = configs.map(_setup)
    labels = frame["model"].astype(str).copy()
    for model in frame["model"].unique():
        rows = frame["model"] == model
        distinct = {json.dumps(setup, sort_keys=True, default=str): setup for setup in setups[rows]}
        if len(distinct) < 2:
            continue
        keys = sorted({key for setup in distinct.values() for key in setup})
        varying = [key for key in keys if len({json.dumps(setup.get(key), default=str) for setup in distinct.values()}) > 1]
        labels[rows] = setups[rows].map(lambda setup: f"{model} ({_difference_text(setup, varying)})")
    frame["setup"] = labels
    return frame


def _difference_text(setup: dict, varying: list[str], max_items: int = 3) -> str:
    """Name the differing settings briefly: "data=fineweb_edu" for a whole other data (or tokenizer...)
    group, else "max_steps=30"; at most `max_items`, then "...". """
    renamed = {key.split(".", 1)[0] for key in varying if key.endswith(".name")}
    items = [f"{section}={_switch_text(setup.get(section + '.name'))}" for section in sorted(renamed)]
    items += [f"{key.split('.', 1)[-1]}={_switch_text(setup.get(key))}" for key in varying
              if key.split(".", 1)[0] not in renamed]
    return ", ".join(items[:max_items]) + (", ..." if len(items) > max_items else "")


def label_mixer_variants(frame: pd.DataFrame) -> pd.DataFrame:
    """Rename mixers that ran with several switch settings to "mixer (switch=value, ...)".

    Only the switches whose values differ between those runs are named, e.g. "interdomain
    (readout=linear)" beside "interdomain (readout=query)".
    """
    frame = frame.copy()
    if "mixer_config" not in frame or not frame["mixer_config"].astype(bool).any():
        configs_json = frame["config"] if "config" in frame else pd.Series([""] * len(frame), index=frame.index)
        frame["mixer_config"] = configs_json.map(lambda text: json.dumps(json.loads(text).get("mixer", {}), sort_keys=True)
                                                 if text else "")
    for mixer in frame["mixer"].unique():
        rows = frame["mixer"] == mixer
        configs = {text: json.loads(text) if text else {} for text in frame.loc[rows, "mixer_config"].unique()}
        if len(configs) < 2:
            continue
        keys = sorted({key for config in configs.values() for key in config})
        varying = [key for key in keys if len({json.dumps(config.get(key)) for config in configs.values()}) > 1]
        labels = {text: f"{mixer} ({', '.join(f'{key}={_switch_text(config.get(key))}' for key in varying)})"
                  for text, config in configs.items()}
        frame.loc[rows, "mixer"] = frame.loc[rows, "mixer_config"].map(labels)
    return frame


def _switch_text(value) -> str:
    return json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)


def _signed(values, digits: int, compact: bool = False) -> str:
    """Like mean_std with a sign; a single number is formatted as it is; compact drops the spaces and the count."""
    if isinstance(values, float):
        text = _number(values, digits)
    elif compact and len(values.dropna()) > 1:
        text = f"{_number(values.mean(), digits)}±{_number(values.std(ddof=1), digits)}"
    else:
        text = mean_std(values, digits)
    return text if not text or text.startswith("-") else "+" + text


def extrapolation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Perplexity per context factor (rows) and mixer (columns), averaged over corpora, then over seeds."""
    frame = label_mixer_variants(label_setups(newest(frame, ["run_id", "data", "factor"])))
    per_run = frame.groupby(["setup", "mixer", "seed", "factor", "run_id"], as_index=False)["ppl"].mean()
    several = per_run["setup"].nunique() > 1
    per_run["row"] = [f"{setup} {factor:g}x" if several else f"{factor:g}x"
                      for setup, factor in zip(per_run["setup"], per_run["factor"])]
    order = [row for _, row in sorted(zip(zip(per_run["setup"], per_run["factor"]), per_run["row"]))]
    pivot = _pivot(per_run, "row", "ppl", 3, list(dict.fromkeys(order)), exact=True)
    return pivot.rename(columns={"row": "run, factor" if several else "factor"})


def extrapolation_buckets(frame: pd.DataFrame) -> pd.DataFrame:
    """Long table of per-bucket perplexity: model, mixer, factor, position (tokens) and ppl, averaged over corpora."""
    frame = newest(frame, ["run_id", "data", "factor"])
    records = []
    for index, row in frame.iterrows():
        try:
            starts, ppls = json.loads(row["bucket_start"]), json.loads(row["bucket_ppl"])
        except json.JSONDecodeError as error:
            raise UserError(f"extrapolation.csv line {index + 2}: bucket_start or bucket_ppl is not a JSON list "
                            f"({error}); repair or delete that line") from error
        if len(starts) != len(ppls):
            raise UserError(f"extrapolation.csv line {index + 2}: {len(starts)} bucket starts but {len(ppls)} "
                            "bucket perplexities; repair or delete that line")
        for start, ppl in zip(starts, ppls):
            records.append({"model": row["model"], "mixer": row["mixer"], "factor": row["factor"],
                            "train_context": row["train_context"], "position": start, "loss": math.log(ppl)})
    long = pd.DataFrame(records)
    if long.empty:
        return long
    long = long.groupby(["model", "mixer", "factor", "train_context", "position"], as_index=False)["loss"].mean()
    return long.assign(ppl=long["loss"].map(math.exp)).drop(columns="loss")


def eval_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Reported metric of each task (rows) per mixer (columns), over seeds; the average row last."""
    frame = frame[frame["reported"].astype(str).str.lower() == "true"]
    latest = label_mixer_variants(label_setups(newest(frame, ["run_id", "task", "metric"])))
    if latest["setup"].nunique() > 1:
        latest["mixer"] = latest["mixer"] + " [" + latest["setup"] + "]"
    latest = latest.assign(row=latest["task"] + " " + latest["metric"])
    tasks = [key for key in dict.fromkeys(latest["row"]) if not key.startswith(("average", "validation"))]
    order = [key for key in latest["row"] if key.startswith("validation")] + tasks + ["average acc"]
    return _pivot(latest, "row", "value", 4, list(dict.fromkeys(order)), exact=True).rename(columns={"row": "task"})


def paper_beside(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Put the numbers of Kiyohara et al. (see paper.py) for `table` beside the user's, with the user's minus theirs."""
    builders = {"runs": _runs_vs_paper, "ablations": _ablations_vs_paper, "extrapolation": _extrapolation_vs_paper,
                "eval": _eval_vs_paper}
    return builders[table](frame)


def _runs_vs_paper(frame: pd.DataFrame) -> pd.DataFrame:
    frame = newest(frame, ["model", "mixer", "mixer_config", "seed", "recipe", "data", "steps"])
    rows = []
    for record in paper.VALIDATION_PPL:
        yours = frame[(frame["model"] == record["model"]) & (frame["mixer"] == record["mixer"])]["val_ppl"]
        paper_value = ("~" if record["approximate"] else "") + f"{record['val_ppl']:.2f}"
        rows.append({"model": record["model"], "mixer": record["mixer"], "yours": mean_std(yours, 2),
                     "paper": paper_value, "Δ": _difference(yours, record["val_ppl"], 2)})
    return pd.DataFrame(rows)


def _ablations_vs_paper(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 4 cells (125M, 2.5B tokens) beside the user's cells of the same configuration, at any scale."""
    frame = newest(frame, ["component", "cell", "config_key"])
    reference = paper.CUBE[0]["val_loss"]
    rows = []
    for record in paper.CUBE:
        mask = frame["cell"] == record["cell"]
        for (component, cell), alias in paper.CUBE_CELL_ALIASES.items():
            if alias == record["cell"]:
                mask |= (frame["component"] == component) & (frame["cell"] == cell)
        if record["cell"] == "full":
            mask = frame["cell"] == "full"
        mine = frame[mask].drop_duplicates("run_id")   # a full-layer run can be the reference of several components
        models = ", ".join(_order(mine["model"], SCALES)) or "-"
        rows.append({"cell (paper table 4)": record["recipe"], "your model": models,
                     "your Δ loss": _signed(mine["delta_loss"], 4),
                     "paper loss": f"{record['val_loss']:.4f}", "paper Δ loss": f"{record['val_loss'] - reference:+.4f}"})
    return pd.DataFrame(rows)


def _extrapolation_vs_paper(frame: pd.DataFrame) -> pd.DataFrame:
    frame = newest(frame, ["run_id", "data", "factor"])
    per_run = frame.groupby(["model", "mixer", "seed", "factor", "run_id"], as_index=False)["ppl"].mean()
    rows = []
    for record in paper.EXTRAPOLATION:
        yours = per_run[(per_run["mixer"] == record["mixer"]) & (per_run["factor"] == record["factor"])]
        rows.append({"mixer": record["mixer"], "factor": f"{record['factor']:g}x",
                     "your model": ", ".join(_order(yours["model"], SCALES)) or "-",
                     "yours": mean_std(yours["ppl"], 2), "paper (1.3b)": f"{record['ppl']:.2f}"})
    return pd.DataFrame(rows)


def _eval_vs_paper(frame: pd.DataFrame) -> pd.DataFrame:
    latest = newest(frame, ["run_id", "task", "metric"])
    if "averaged_tasks" in latest:
        # an average is comparable with the published one only over the same eight tasks
        paper_tasks = {task for task, metric in paper._DOWNSTREAM if metric in ("acc", "acc_norm") and task != "average"}
        other_average = (latest["task"] == "average") & latest["averaged_tasks"].map(
            lambda text: set(str(text).replace(",", " ").split()) != paper_tasks)
        latest = latest[~other_average]
    rows = []
    for record in paper.DOWNSTREAM:
        mask = (latest["mixer"] == record["mixer"]) & (latest["task"] == record["task"])
        yours = latest[mask & (latest["metric"] == record["metric"])]["value"]
        rows.append({"task": record["task"], "metric": record["metric"], "mixer": record["mixer"],
                     "your model": ", ".join(_order(latest[mask]["model"], SCALES)) or "-",
                     "yours": mean_std(yours, 4), "paper (1.3b)": f"{record['value']:.4f}",
                     "Δ": _difference(yours, record["value"], 4)})
    return pd.DataFrame(rows)


def _difference(values: pd.Series, reference: float, digits: int) -> str:
    values = values.dropna()
    return "" if values.empty else f"{values.mean() - reference:+.{digits}f}"
