"""Find the checkpoint that `resume=` names.

`resume=last` continues the newest unfinished run of the same training config (`runs.config_key`),
so a preempted job can be restarted with its own command plus `resume=last`. With no such run it
starts a new one. `resume=<run id>` continues that run with the config saved in its folder. A run is
unfinished while it has `checkpoints/resume.ckpt` in its folder and no row in runs.csv.
"""

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError
from .runs import config_key, read_rows

log = logging.getLogger("idattn")

RESUME_CHECKPOINT = Path("checkpoints") / "resume.ckpt"


@dataclass
class Resume:
    run_id: str
    checkpoint: Path
    config: DictConfig   # the config the run was started with


def find_resume(cfg: DictConfig) -> Resume | None:
    """Return the run and checkpoint that cfg.resume names, or None to start a new run."""
    value = cfg.get("resume")
    if value is None:
        return None
    output_dir, value = Path(cfg.paths.output_dir), str(value)
    finished = {row.get("run_id") for row in read_rows(Path(cfg.paths.results_dir) / "runs.csv")}
    if value == "last":
        key = config_key(cfg)
        for checkpoint in sorted(output_dir.glob(f"*/{RESUME_CHECKPOINT}"), reverse=True):  # run ids sort by time
            run_dir = checkpoint.parent.parent
            config_file = run_dir / "config.yaml"
            if run_dir.name in finished or not config_file.is_file():
                continue
            saved = OmegaConf.load(config_file)
            if config_key(saved) == key:
                return Resume(run_dir.name, _checked(checkpoint), saved)
        log.info("resume=last: no unfinished run of this config in %s, so a new run starts", output_dir)
        return None
    if value in finished:
        raise UserError(f"run {value} already finished (it has a row in runs.csv), so there is nothing to resume; "
                        "start a new run without resume=")
    run_dir = output_dir / value
    checkpoint = run_dir / RESUME_CHECKPOINT
    if not checkpoint.is_file() or not (run_dir / "config.yaml").is_file():
        unfinished = sorted(p.parent.parent.name for p in output_dir.glob(f"*/{RESUME_CHECKPOINT}")
                            if p.parent.parent.name not in finished)
        listed = ", ".join(unfinished[-5:]) or "none"
        raise UserError(f"no checkpoint to resume run {value!r} from ({checkpoint} not found); "
                        f"unfinished runs in {output_dir}: {listed}; or use resume=last")
    return Resume(value, _checked(checkpoint), OmegaConf.load(run_dir / "config.yaml"))


def _checked(checkpoint: Path) -> Path:
    """Return `checkpoint` if it is a whole torch.save file (a zip archive whose central directory, at the
    very end, is intact), else raise UserError."""
    if not zipfile.is_zipfile(checkpoint):
        raise UserError(f"checkpoint {checkpoint} is damaged (not a complete torch checkpoint); restore it from a "
                        "copy, or start a new run without resume= (delete that run folder first with resume=last)")
    return checkpoint
