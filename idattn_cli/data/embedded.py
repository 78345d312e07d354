"""The embedded corpus: Shakespeare's 42 works, shipped gzipped inside the package (see NOTICE.md).

Split by work so that no validation text is seen in training. The validation works (about 10% of
the 5.0 MB) are fixed here, so every run and every user gets the same split.
"""

import gzip
from importlib import resources

VALIDATION_WORKS = ("hamlet", "macbeth", "sonnets", "twelfth_night")


def _corpus_dir():
    return resources.files(__package__) / "shakespeare"


def list_works() -> list[str]:
    """Names of all embedded works, sorted."""
    return sorted(entry.name.removesuffix(".txt.gz") for entry in _corpus_dir().iterdir()
                  if entry.name.endswith(".txt.gz"))


def load_split(split: str) -> list[str]:
    """Return the texts of the `train` or `validation` works, in name order."""
    if split not in ("train", "validation"):
        raise ValueError(f"unknown split {split!r}; valid splits: train, validation")
    names = [name for name in list_works() if (name in VALIDATION_WORKS) == (split == "validation")]
    return [gzip.decompress((_corpus_dir() / f"{name}.txt.gz").read_bytes()).decode("utf-8") for name in names]
