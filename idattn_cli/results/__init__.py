"""Results files: append-only CSV tables, one row per run or evaluation."""
