"""Figures of the results CSVs with matplotlib, sized for one column of a two-column paper.

Every figure is 3.25 x 2.4 inches and saved at 300 dpi, so the PNG is 975 x 720 pixels, next to an
SVG of the same name. Each mixer keeps one color and marker in every figure.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only: no display is needed or used
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import UserError  # noqa: E402
from .tables import MIXER_ORDER, SCALES, _order, extrapolation_buckets, label_mixer_variants, label_setups, newest  # noqa: E402

FIGSIZE = (3.25, 2.4)    # inches: one column of a two-column paper
DPI = 300
STYLE = {"interdomain": ("tab:blue", "o"), "s4d": ("tab:green", "s"), "softmax": ("tab:red", "^")}


def _style(mixer: str):
    return STYLE.get(mixer.split(" ")[0], ("tab:gray", "d"))


def _figure():
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig, path: Path) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    paths = [path.with_suffix(".png"), path.with_suffix(".svg")]
    for target in paths:
        fig.savefig(target, dpi=DPI)
    plt.close(fig)
    return paths


def plot_runs(frame: pd.DataFrame, path: Path) -> list[Path]:
    """Validation perplexity against parameter count, one line per mixer, mean over seeds."""
    frame = label_mixer_variants(label_setups(frame))
    frame = newest(frame, ["setup", "mixer", "seed"])
    mixed = frame.groupby("model")["setup"].nunique()
    if (mixed > 1).any():
        raise UserError(f"the runs figure needs one training setup per scale, but {', '.join(mixed[mixed > 1].index)} "
                        "has several; pick one with --where, e.g. --where steps=600 or --where data=embedded")
    fig, ax = _figure()
    for mixer in _order(frame["mixer"], MIXER_ORDER):
        part = frame[frame["mixer"] == mixer].groupby("model", as_index=False)[["n_params", "val_ppl"]].mean()
        part = part.sort_values("n_params")
        color, marker = _style(mixer)
        ax.plot(part["n_params"], part["val_ppl"], marker=marker, color=color, label=mixer, markersize=4,
                linestyle="-" if len(part) > 1 else "none")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("validation perplexity")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_extrapolation(frame: pd.DataFrame, path: Path) -> list[Path]:
    """Perplexity against context factor (multiples of the training context), one line per mixer and model."""
    frame = label_mixer_variants(label_setups(newest(frame, ["run_id", "data", "factor"])))
    per_run = frame.groupby(["setup", "mixer", "factor", "run_id"], as_index=False)["ppl"].mean()
    curves = per_run.groupby(["setup", "mixer", "factor"], as_index=False)["ppl"].mean()
    several_models = curves["setup"].nunique() > 1
    fig, ax = _figure()
    for model in _order(curves["setup"], SCALES):
        for mixer in _order(curves["mixer"], MIXER_ORDER):
            part = curves[(curves["setup"] == model) & (curves["mixer"] == mixer)].sort_values("factor")
            if part.empty:
                continue
            color, marker = _style(mixer)
            label = f"{mixer} ({model})" if several_models else mixer
            ax.plot(part["factor"], part["ppl"], marker=marker, color=color, label=label, markersize=4)
    ax.axvline(1.0, color="black", linewidth=0.6, linestyle=":")
    ax.set_xlabel("context length / training context")
    ax.set_ylabel("perplexity")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_extrapolation_buckets(frame: pd.DataFrame, path: Path) -> list[Path]:
    """Perplexity per position bucket at the largest factor of each run, one line per mixer."""
    long = extrapolation_buckets(frame)
    fig, ax = _figure()
    for (model, mixer), part in long.groupby(["model", "mixer"], sort=False):
        part = part[part["factor"] == part["factor"].max()].sort_values("position")
        color, marker = _style(mixer)
        ax.plot(part["position"] / part["train_context"], part["ppl"], marker=marker, color=color,
                label=f"{mixer} ({model}, {part['factor'].iloc[0]:g}x)", markersize=3)
    ax.axvline(1.0, color="black", linewidth=0.6, linestyle=":")
    ax.set_xlabel("bucket start / training context")
    ax.set_ylabel("perplexity")
    ax.legend(fontsize=6)
    return _save(fig, path)


def plot_ablations(frame: pd.DataFrame, path: Path) -> list[Path]:
    """Change in validation loss against the full layer, one bar per cell (mean over seeds)."""
    frame = newest(frame, ["component", "cell", "config_key"])
    frame = frame[frame["cell"] != "full"]
    means = frame.groupby(["component", "cell"], sort=False, as_index=False)["delta_loss"].mean()
    fig, ax = _figure()
    labels = [cell if means["component"].nunique() == 1 else f"{component}: {cell}"
              for component, cell in zip(means["component"], means["cell"])]
    ax.barh(range(len(means)), means["delta_loss"], color="tab:blue")
    ax.set_yticks(range(len(means)), labels, fontsize=7)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.invert_yaxis()
    ax.set_xlabel("Δ val. loss vs. full layer (nats)", fontsize=8)
    return _save(fig, path)


def plot_eval(frame: pd.DataFrame, path: Path) -> list[Path]:
    """Accuracy per task, one bar per mixer (reported accuracy metrics only)."""
    frame = frame[(frame["reported"].astype(str).str.lower() == "true") & frame["metric"].isin(["acc", "acc_norm"])]
    frame = newest(frame, ["run_id", "task", "metric"])
    frame = frame.assign(task=frame["task"] + " " + frame["metric"])   # acc and acc_norm stay apart
    means = frame.groupby(["task", "mixer"], as_index=False)["value"].mean()
    tasks = list(dict.fromkeys(means["task"]))
    mixers = _order(means["mixer"], MIXER_ORDER)
    width = 0.8 / max(1, len(mixers))
    fig, ax = _figure()
    for offset, mixer in enumerate(mixers):
        part = means[means["mixer"] == mixer].set_index("task").reindex(tasks)
        positions = [index + offset * width for index in range(len(tasks))]
        ax.bar(positions, part["value"], width=width, color=_style(mixer)[0], label=mixer)
    ax.set_xticks([index + width * (len(mixers) - 1) / 2 for index in range(len(tasks))], tasks,
                  rotation=45, ha="right", fontsize=6)
    ax.set_ylabel("accuracy (fraction)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _save(fig, path)


PLOTS = {"runs": [("runs", plot_runs)], "ablations": [("ablations", plot_ablations)],
         "extrapolation": [("extrapolation", plot_extrapolation), ("extrapolation_buckets", plot_extrapolation_buckets)],
         "eval": [("eval", plot_eval)]}
