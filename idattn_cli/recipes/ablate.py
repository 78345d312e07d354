"""`idattn ablate component=<name>`: train the full layer and each variant of one component.

Every cell composes the same config (seed, data order, steps, token budget) plus its own overrides,
so the component is the only difference between rows. Each row of results/ablations.csv carries the
change in validation loss and perplexity against the full layer's cell.

Cells are keyed by their training config (`runs.config_key`). A cell whose row already exists in
ablations.csv is skipped, and a cell whose run already exists in runs.csv reuses that run's numbers.
An interrupted sweep so resumes where it stopped. `force=true` trains every cell again.

With `-m` (`ablate_multirun`), the cells that need training run as separate jobs of a Hydra launcher
(sweep.py), for example `hydra/launcher=submitit_local`; then this process writes the rows from their runs.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import provenance
from ..config import compose_config
from ..errors import UserError
from ..results.store import append_row
from .runs import config_key, find_run, read_rows

log = logging.getLogger("idattn")

REFERENCE = "full"
CUBE = ("cube_full", "cube_full_norope", "cube_generic_query", "cube_generic_query_norope",
        "cube_dualkv_linear", "cube_dualkv_linear_norope", "cube_s4d", "cube_s4d_rope", "cube_softmax")
# taylor is left out: its 1 + R + R^2 features change the state size, so it is not a like-for-like swap
FEATURE_MAPS = ("silu_l2", "elu", "relu", "identity", "random_fourier")
METRICS = ("val_loss", "val_ppl", "val_bpb", "train_loss", "n_params", "state_size_per_layer", "steps")


@dataclass
class Cell:
    name: str
    overrides: list[str]


def _switch(key: str, values) -> callable:
    """Cells that set mixer.<key> to each value other than the full layer's."""
    def cells(cfg: DictConfig) -> list[Cell]:
        current = cfg.mixer[key]
        return [Cell(f"{key}={value}", [f"mixer.{key}={value}"]) for value in values if value != current]
    return cells


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _state_split(cfg: DictConfig) -> list[Cell]:
    """Cells that trade modes M against feature width R at the full layer's state M (R + P) per head."""
    mixer, head_dim = cfg.mixer, cfg.model.d_model // cfg.model.n_heads
    if mixer.feature_map not in ("silu_l2", "elu", "relu", "identity"):
        raise UserError(f"component state_split needs a feature map whose width is mixer.feature_dim; "
                        f"mixer.feature_map={mixer.feature_map} is not one; set mixer.feature_map=silu_l2")
    modes, width = mixer.state_dim, mixer.feature_dim or head_dim
    per_head = modes * (width + head_dim)
    cells = []
    for new_modes in (modes * 2, modes // 2, modes // 4):
        new_width = per_head // max(new_modes, 1) - head_dim
        exact = new_modes >= 1 and per_head % new_modes == 0
        if exact and new_width >= 2 and new_width % 2 == 0:   # RoPE rotates channel pairs
            cells.append(Cell(f"M={new_modes},R={new_width}",
                              [f"mixer.state_dim={new_modes}", f"mixer.feature_dim={new_width}"]))
    return cells


COMPONENTS = {
    "query_projection": lambda cfg: [Cell("readout=linear", ["mixer.readout=linear"])],
    "dual_kv_input": lambda cfg: [Cell("input=generic", ["mixer.input=generic"])],
    "rope": lambda cfg: [Cell(f"rope={_flag(not cfg.mixer.rope)}", [f"mixer.rope={_flag(not cfg.mixer.rope)}"])],
    "feature_map": _switch("feature_map", FEATURE_MAPS),
    "readout_matrix": _switch("readout_matrix", ("full", "diagonal")),
    "state_split": _state_split,
    "cube": lambda cfg: [Cell(name, [f"recipe={name}"]) for name in CUBE if name != "cube_full"],
}


def ablation_cells(component: str, cfg: DictConfig) -> list[Cell]:
    """Return the cells of a component: the full layer first, then its variants."""
    if component not in COMPONENTS:
        raise UserError(f"invalid component {component!r}; valid components: {', '.join(COMPONENTS)}")
    if cfg.mixer.name != "interdomain":
        raise UserError(f"ablations start from the interdomain mixer, but mixer={cfg.mixer.name}; "
                        "drop the mixer override (the cube component adds the other mixers)")
    reference = Cell(REFERENCE, ["recipe=cube_full"] if component == "cube" else [])
    return [reference, *COMPONENTS[component](cfg)]


def ablate(cfg: DictConfig, overrides: list[str], on_cell=None, trained_in_jobs: set[str] | None = None,
           composed=None) -> list[dict]:
    """Run every cell of `cfg.ablate.component` and return its rows (appended to ablations.csv).

    `on_cell(index, total, cell, status)` is called before each cell, for progress output.
    `trained_in_jobs` contains the run ids that `ablate_multirun`'s jobs just trained for the cells,
    and `composed` its (component, cells, configs), so they are not composed again.
    """
    component, cells, configs = composed or _cells(cfg, overrides)
    path = Path(cfg.paths.results_dir) / "ablations.csv"
    rows, reference = [], None
    for index, (cell, cell_cfg) in enumerate(zip(cells, configs)):
        key = config_key(cell_cfg)
        existing = None if cfg.ablate.force else _existing_row(path, component, cell.name, key)
        if on_cell:
            on_cell(index, len(cells), cell, "skip" if existing else "run")
        if existing is not None:
            row = {**existing, "status": "skipped"}
        else:
            force = bool(cfg.ablate.force) and trained_in_jobs is None
            row = _run_cell(cell_cfg, overrides + cell.overrides, force, trained_in_jobs or set())
            row = _ablation_row(component, cell, key, row, reference, overrides, cell_cfg)
            append_row(path, row)
        reference = reference or row
        rows.append(row)
    return rows


def ablate_multirun(cfg: DictConfig, overrides: list[str], hydra_overrides: list[str], on_cell=None) -> list[dict]:
    """Train the cells that need it as jobs of the Hydra launcher in `hydra_overrides`, then write the rows."""
    from .sweep import launch

    composed = _cells(cfg, overrides)
    component, cells, configs = composed
    path, force = Path(cfg.paths.results_dir) / "ablations.csv", bool(cfg.ablate.force)
    pending = []
    for index, (cell, cell_cfg) in enumerate(zip(cells, configs)):
        key = config_key(cell_cfg)
        if force:
            status = "job"
        elif _existing_row(path, component, cell.name, key) is not None:
            status = "skip"
        else:
            status = "reuse" if find_run(cfg.paths.results_dir, key=key) is not None else "job"
        if on_cell:
            on_cell(index, len(cells), cell, status)
        if status == "job":
            pending.append(cell)
    trained = set(launch([overrides + cell.overrides for cell in pending], hydra_overrides)) if pending else set()
    return ablate(cfg, overrides, trained_in_jobs=trained, composed=composed)


def _cells(cfg: DictConfig, overrides: list[str]) -> tuple[str, list[Cell], list[DictConfig]]:
    """Return the component, its cells and each cell's composed config."""
    component = cfg.ablate.component
    if component is None:
        raise UserError(f"no component given; run `idattn ablate component=<name>` with one of: {', '.join(COMPONENTS)}")
    cells = ablation_cells(component, cfg)
    configs = [_compose_cell(overrides, cell) for cell in cells]
    _check_distinct(component, cells, configs)
    return component, cells, configs


def _compose_cell(overrides: list[str], cell: Cell) -> DictConfig:
    # the user's overrides come first, so the cell's switch wins over them
    return compose_config(overrides + cell.overrides)


def _check_distinct(component: str, cells: list[Cell], configs: list[DictConfig]) -> None:
    reference_key = config_key(configs[0])
    for cell, cell_cfg in zip(cells[1:], configs[1:]):
        if config_key(cell_cfg) == reference_key:
            raise UserError(f"cell {cell.name!r} of component {component} trains the same config as the "
                            "full layer under your overrides; remove the override that sets it")


def _existing_row(path: Path, component: str, cell: str, key: str) -> dict | None:
    for row in reversed(read_rows(path)):
        if (row.get("component"), row.get("cell"), row.get("config_key")) == (component, cell, key):
            return row
    return None


def _run_cell(cell_cfg: DictConfig, overrides: list[str], force: bool, trained_in_jobs: set[str]) -> dict:
    """Return the runs.csv row of the cell: an earlier run of the same config, else a new one."""
    if not force:
        run = find_run(cell_cfg.paths.results_dir, key=config_key(cell_cfg))
        if run is not None and run.run_id in trained_in_jobs:
            return {**run.row, "status": "trained"}
        if run is not None:
            log.info("reusing run %s (same training config)", run.run_id)
            return {**run.row, "status": "reused"}
    from .train import train   # imports Lightning, which a sweep of skipped cells never needs

    return {**train(cell_cfg, overrides), "status": "trained"}


def _ablation_row(component: str, cell: Cell, key: str, run: dict, reference: dict | None,
                  overrides: list[str], cell_cfg: DictConfig) -> dict:
    metrics = {name: run[name] for name in METRICS}
    base = reference or {"val_loss": metrics["val_loss"], "val_ppl": metrics["val_ppl"], "run_id": run["run_id"]}
    return {
        "ablation_id": provenance.new_run_id(),
        "timestamp": provenance.utc_timestamp(),
        "command": "ablate",
        "component": component,
        "cell": cell.name,
        "cell_overrides": " ".join(cell.overrides),
        "run_id": run["run_id"],
        "status": run["status"],
        "model": cell_cfg.model.name,
        "mixer": cell_cfg.mixer.name,
        "data": cell_cfg.data.name,
        "tokenizer": cell_cfg.tokenizer.name,
        "seed": cell_cfg.seed,
        **metrics,
        "delta_loss": float(metrics["val_loss"]) - float(base["val_loss"]),
        "delta_ppl": float(metrics["val_ppl"]) - float(base["val_ppl"]),
        "reference_run_id": base["run_id"],
        "config_key": key,
        "git_revision": provenance.git_revision(),
        **provenance.versions(),
        "overrides": " ".join(overrides),
        "config": json.dumps(OmegaConf.to_container(cell_cfg), sort_keys=True),
    }
