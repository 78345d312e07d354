"""A fast check, before torch, Lightning, datasets or transformers are imported, that a run can get its data.

`check_data_access(data_cfg, tokenizer_cfg, data_dir)` raises now the UserError that building the
tokenizer or the datamodule would raise later. It covers a hub that is needed but unreachable or
switched off, missing or unreadable local files, Parquet files without the text column, and
contradictory validation settings. It opens no hub stream, tokenizes nothing and imports none of torch,
Lightning, datasets or transformers, so a command can call it before those slow imports. Problems inside file
contents still surface only when the files are read.
"""

from pathlib import Path

from .sources import SPLITS, select
from .tokenizers import check_tokenizer_access


def check_data_access(data_cfg, tokenizer_cfg, data_dir: str | Path | None = None) -> None:
    """Raise UserError if the configured tokenizer or either split of the data source is out of reach."""
    check_tokenizer_access(tokenizer_cfg, data_dir)
    if data_cfg["name"] == "embedded":
        return
    for split in SPLITS:
        select(data_cfg, split, data_dir, check_only=True)
