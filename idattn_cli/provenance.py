"""Provenance columns of a results row: run id, time, code revision and package versions."""

import os
import platform
import secrets
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("idattn", "torch", "lightning", "hydra-core", "datasets", "transformers", "tokenizers", "lm-eval")


def new_run_id() -> str:
    """Return a sortable, unique id: UTC time plus 6 random hex digits, e.g. 20261204-204500-3fa2c1."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def global_rank() -> int:
    """Return this process's rank in a distributed run, 0 when not distributed.

    Lightning's value is used once Lightning is imported (its strategies set the true global rank);
    before that, the launcher's environment variables.
    """
    if "lightning.fabric" in sys.modules:
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        return getattr(rank_zero_only, "rank", 0)
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


def job_id() -> str:
    """Return the scheduler's job id (SLURM, or submitit's local executor), or an empty string."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID") or ""


def utc_timestamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_revision() -> str:
    """Return the commit of the idattn checkout, `-dirty` if tracked files changed, `unknown` outside git."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")


def device_name(device) -> str:
    """Return the GPU model for a CUDA device, else the CPU model (/proc/cpuinfo on Linux, else the architecture)."""
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """Return the versions of Python and of the packages that decide the numbers, as `<name>_version` columns."""
    found = {"python_version": platform.python_version()}
    for name in PACKAGES:
        try:
            found[f"{name.replace('-', '_')}_version"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[f"{name.replace('-', '_')}_version"] = "not installed"
    return found
