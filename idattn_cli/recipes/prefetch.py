"""`idattn prefetch`: download the configured data source and tokenizer for use on an offline machine.

Writes under `paths.data_dir`:
    <data_dir>/<data.name>/<data.subset or "default">/   the hub dataset's files for data.train_split and
                                                        data.validation_split, at most data.prefetch_files
                                                        per split, plus a manifest of them
    <data_dir>/tokenizers/<tokenizer.name>/              the hub tokenizer, saved with save_pretrained
Later runs with the same paths.data_dir read these copies before trying the hub. Sources and tokenizers
that need no download (embedded, local, byte, gpt2, a local tokenizer.source) are skipped. When the hub
is unreachable or offline mode is set, it raises UserError before downloading anything.
"""

from pathlib import Path

from omegaconf import DictConfig

from ..data.hub import require_hub
from ..data.hub_datasets import describe, download_dataset, offline_alternatives
from ..data.tokenizers import BUILTIN, save_tokenizer
from ..data.tokenizers import offline_alternatives as tokenizer_alternatives
from ..errors import UserError


def prefetch(cfg: DictConfig) -> list[tuple[str, Path]]:
    """Download what `cfg.data` and `cfg.tokenizer` need; return (config choice, folder) per download."""
    data_dir = Path(cfg.paths.data_dir)
    max_files = _max_files(cfg.data.get("prefetch_files"))
    # check both before downloading anything, so that an offline machine stops before a partial download
    if _dataset_needs_hub(cfg.data):
        require_hub(describe(cfg.data), offline_alternatives(cfg.data))
    if _tokenizer_needs_hub(cfg.tokenizer):
        source = cfg.tokenizer.source
        require_hub(f"tokenizer {source} (tokenizer={cfg.tokenizer.name})", tokenizer_alternatives(cfg.tokenizer.name))
    fetched = []
    dataset_dir = download_dataset(cfg.data, data_dir, max_files=max_files)
    if dataset_dir is not None:
        fetched.append((f"data={cfg.data.name}", dataset_dir))
    tokenizer_dir = save_tokenizer(cfg.tokenizer, data_dir)
    if tokenizer_dir is not None:
        fetched.append((f"tokenizer={cfg.tokenizer.name}", tokenizer_dir))
    return fetched


def _dataset_needs_hub(data_cfg) -> bool:
    return bool(data_cfg.get("hub_name")) and not data_cfg.get("path")


def _tokenizer_needs_hub(tokenizer_cfg) -> bool:
    source = tokenizer_cfg.get("source")
    return tokenizer_cfg.name not in BUILTIN and bool(source) and not Path(str(source)).expanduser().exists()


def _max_files(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"invalid value {value!r} for data.prefetch_files; set it to a positive integer, or null "
                        "for every file")
    return value

