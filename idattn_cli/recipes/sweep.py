"""Hydra multirun (`-m`): run each training of a sweep as one job of a Hydra launcher plugin.

`hydra/launcher=basic` (the default) runs the jobs one after another in this process.
`hydra/launcher=submitit_local` runs each as its own local process, and `hydra/launcher=submitit_slurm`
submits each to SLURM (docs/scaling.md). Hydra's own machinery composes every job's config from
conf/ and the job's overrides, and writes its log and config under hydra.sweep.dir. Each job trains
one run with `idattn train`'s recipe and appends its row to runs.csv under the results file lock;
this process waits for all jobs and reports the ones that failed.
"""

import itertools
import logging
import os
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from ..config import compose_config, conf_dir
from ..errors import UserError

log = logging.getLogger("idattn")

THREADS_ENV = "IDATTN_TORCH_THREADS"   # torch threads per job, set for the jobs of submitit_local


def is_hydra_override(override: str) -> bool:
    """True for overrides of Hydra's own settings: hydra/launcher=..., hydra.sweep.dir=..."""
    return override.lstrip("+~").startswith(("hydra/", "hydra."))


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """Return one override list per job: the product of comma-separated values, as Hydra's basic sweeper
    forms it (`seed=1,2 mixer=a,b` gives 4 jobs)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = [[f"{o.get_key_element()}={value}" for value in o.sweep_string_iterator()]
               if o.is_sweep_override() else [o.input_line] for o in parsed]
    return [list(job) for job in itertools.product(*choices)]


def launch(jobs: list[list[str]], hydra_overrides: list[str]) -> list[str]:
    """Train one run per override list in `jobs` through the configured Hydra launcher; return run ids."""
    # NOTE: Hydra's internal Hydra class, which Hydra's own sweepers use to build and call launchers
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobStatus
    from hydra.types import HydraContext, RunMode

    for job in jobs:   # the same checks as a single run, before any job starts
        compose_config(job)
    GlobalHydra.instance().clear()
    hydra = Hydra.create_main_hydra2(task_name="idattn", config_search_path=create_config_search_path(str(conf_dir())))
    try:
        config = hydra.compose_config("config", hydra_overrides + jobs[0], run_mode=RunMode.MULTIRUN)
        HydraConfig.instance().set_config(config)
        context = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(config))
        launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=train_job,
                                                           config=config)
        name = config.hydra.runtime.choices.get("hydra/launcher")
        log.info("%d jobs through hydra/launcher=%s, logs in %s", len(jobs), name, config.hydra.sweep.dir)
        if name == "submitit_local":   # all jobs run at once, so they share the cores instead of each taking all
            cores = config.hydra.launcher.cpus_per_task or max(1, (os.cpu_count() or 1) // len(jobs))
            os.environ[THREADS_ENV] = str(cores)
        returns = launcher.launch(jobs, initial_job_idx=0)
    finally:
        GlobalHydra.instance().clear()
        os.environ.pop(THREADS_ENV, None)
    _remove_empty_folder(Path(str(config.hydra.sweep.dir)) / ".submitit" / "%j")   # submitit's unused template
    failed = [(index, ret) for index, ret in enumerate(returns) if ret.status == JobStatus.FAILED]
    if failed:
        index, ret = failed[0]
        error = ret._return_value
        raise UserError(f"{len(failed)} of {len(jobs)} jobs failed; job {index} ({' '.join(jobs[index])}): "
                        f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}; "
                        f"its log is under {Path(str(config.hydra.sweep.dir))}")
    return [ret.return_value for ret in returns]


def _remove_empty_folder(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def train_job(cfg: DictConfig) -> str:
    """Task of one job (runs in the job's process): train the job's config and return the run id."""
    import torch
    from hydra.core.hydra_config import HydraConfig

    from ..cli import _setup_logging
    from ..config import validate_config
    from ..runtime import tune_cpu_allocator
    from .train import train

    if not logging.getLogger().handlers:   # a job process of its own: log and allocate as `idattn train` does
        _setup_logging()
        tune_cpu_allocator()
    threads = os.environ.get(THREADS_ENV) or os.environ.get("SLURM_CPUS_PER_TASK")
    if threads:
        torch.set_num_threads(int(threads))
    OmegaConf.resolve(cfg)
    validate_config(cfg)
    return train(cfg, list(HydraConfig.get().overrides.task))["run_id"]
