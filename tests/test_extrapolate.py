"""`idattn extrapolate`: windows, position buckets, rows at each factor, run lookup and errors."""

import json
import math

import pytest
import torch
from helpers import quick_run_overrides

from idattn_cli.config import compose_config
from idattn_cli.errors import UserError
from idattn_cli.evaluation.perplexity import bucket_losses, document_windows, token_losses
from idattn_cli.models import build_model
from idattn_cli.recipes.extrapolate import extrapolate, parse_factors
from idattn_cli.recipes.runs import read_rows


def test_document_windows_stay_inside_documents():
    documents = [list(range(10)), list(range(100, 103)), list(range(200, 216))]
    windows = document_windows(documents, length=4, max_windows=100)
    # 10 tokens -> 2 windows of 5 sharing no target; 3 tokens -> none; 16 tokens -> 3 windows
    assert windows.tolist() == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8],
                                [200, 201, 202, 203, 204], [204, 205, 206, 207, 208], [208, 209, 210, 211, 212]]
    assert document_windows(documents, length=4, max_windows=2).shape == (2, 5)


def test_document_windows_reject_short_documents():
    with pytest.raises(ValueError, match="more than 8 tokens"):
        document_windows([list(range(8))], length=8, max_windows=3)


def test_bucket_losses_tail_bucket():
    losses = torch.arange(14, dtype=torch.float64).reshape(2, 7)
    buckets = bucket_losses(losses, bucket_size=3)
    assert [(b["start"], b["end"]) for b in buckets] == [(0, 3), (3, 6), (6, 7)]
    assert buckets[2]["loss"] == pytest.approx((6 + 13) / 2)
    assert buckets[0]["ppl"] == pytest.approx(math.exp(buckets[0]["loss"]))


def test_token_losses_match_float64_reference():
    torch.manual_seed(0)
    cfg = compose_config(["model.n_layers=1"])
    model = build_model(cfg.model, cfg.mixer, 256)
    windows = torch.randint(0, 256, (3, 41))
    losses = token_losses(model, windows, batch_size=2)
    model64 = model.double()
    logits, _ = model64(windows[:, :-1])
    expected = -torch.log_softmax(logits, -1).gather(-1, windows[:, 1:, None])[..., 0]
    assert losses.shape == (3, 40)
    torch.testing.assert_close(losses, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("factors", [["1", "x"], [0], [-2], ["inf"], []])
def test_parse_factors_rejects(factors):
    with pytest.raises(UserError):
        parse_factors(factors)


def test_parse_factors_sorts_and_dedupes():
    assert parse_factors(["3.5", 1, "1.0", 2]) == [1.0, 2.0, 3.5]


@pytest.mark.parametrize("mixer", ["interdomain", "softmax"])
def test_rows_at_each_factor(tmp_path, mixer):
    overrides = quick_run_overrides(tmp_path) + [f"mixer={mixer}"]
    settings = ["extrapolate.factors=[1,3.5]", "extrapolate.max_tokens=2048", "extrapolate.batch_size=4"]
    rows = extrapolate(compose_config(overrides + settings), overrides)
    assert len(read_rows(tmp_path / "results" / "runs.csv")) == 1   # trained first, once
    written = read_rows(tmp_path / "results" / "extrapolation.csv")
    assert [float(row["factor"]) for row in written] == [1.0, 3.5]
    assert [int(row["eval_length"]) for row in written] == [64, 224]
    assert [len(json.loads(row["bucket_ppl"])) for row in written] == [2, 7]   # buckets of 32 positions
    for row in rows:
        assert row["mixer"] == mixer
        assert row["n_tokens"] == row["n_windows"] * row["eval_length"] <= 2048
        assert math.isfinite(row["ppl"])
        assert row["ppl"] > 1
        bucket_ppl = json.loads(row["bucket_ppl"])
        mean_loss = sum(math.log(p) for p in bucket_ppl[:-1]) * 32 + math.log(bucket_ppl[-1]) * (row["eval_length"] - 32 * (len(bucket_ppl) - 1))
        assert mean_loss / row["eval_length"] == pytest.approx(row["loss"], rel=1e-5)
    for column in ("run_id", "seed", "config", "git_revision", "torch_version", "settings"):
        assert written[0][column], column

    again = extrapolate(compose_config(overrides + settings), overrides)
    assert len(read_rows(tmp_path / "results" / "runs.csv")) == 1   # the run is found, not retrained
    assert again[0]["run_id"] == rows[0]["run_id"]
    assert again[1]["loss"] == pytest.approx(rows[1]["loss"], rel=1e-6)


def test_unknown_run_id(tmp_path):
    overrides = quick_run_overrides(tmp_path)
    with pytest.raises(UserError, match="run id 'nope' not found"):
        extrapolate(compose_config(overrides + ["extrapolate.run=nope"]), overrides)


def test_invalid_split(tmp_path):
    overrides = quick_run_overrides(tmp_path)
    with pytest.raises(UserError, match="invalid value 'test' for extrapolate.split"):
        extrapolate(compose_config(overrides + ["extrapolate.split=test"]), overrides)


def test_data_path_needs_corpus(tmp_path):
    overrides = quick_run_overrides(tmp_path)
    with pytest.raises(UserError, match="extrapolate.data, which is unset"):
        extrapolate(compose_config(overrides + ["extrapolate.data_path=/x.jsonl"]), overrides)


def test_unknown_corpus_fails_before_training(tmp_path):
    overrides = quick_run_overrides(tmp_path)
    with pytest.raises(UserError, match="extrapolate.data=nosuch: invalid choice 'nosuch' for data"):
        extrapolate(compose_config(overrides + ["extrapolate.data=[nosuch]"]), overrides)
    assert not (tmp_path / "results" / "runs.csv").exists()


def test_local_corpus_with_data_overrides(tmp_path):
    corpus = tmp_path / "long.jsonl"
    text = " ".join(f"word{i}" for i in range(400))
    corpus.write_text("\n".join(json.dumps({"body": text}) for _ in range(3)) + "\n")
    overrides = quick_run_overrides(tmp_path)
    settings = ["extrapolate.data=[local]", f"extrapolate.data_path={corpus}", "extrapolate.max_tokens=512",
                'extrapolate.data_overrides=["data.text_column=body","data.validation_fraction=0.5"]', "extrapolate.split=validation"]
    rows = extrapolate(compose_config(overrides + settings), overrides)
    assert [row["data"] for row in rows] == ["local", "local"]
    assert rows[0]["device"] == "cpu"
