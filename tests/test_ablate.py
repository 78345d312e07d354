"""`idattn ablate`: the cells of each component, the rows and their deltas, skipping and --force."""

import pytest
from helpers import quick_run_overrides

from idattn_cli.config import compose_config
from idattn_cli.errors import UserError
from idattn_cli.recipes.ablate import COMPONENTS, ablate, ablation_cells
from idattn_cli.recipes.runs import config_key, read_rows


def cell_names(component, overrides=()):
    return [cell.name for cell in ablation_cells(component, compose_config(list(overrides)))]


def test_cells_start_with_full_layer():
    for component in COMPONENTS:
        assert cell_names(component)[0] == "full", component


def test_switch_cells():
    assert cell_names("query_projection") == ["full", "readout=linear"]
    assert cell_names("dual_kv_input") == ["full", "input=generic"]
    assert cell_names("rope") == ["full", "rope=false"]
    assert cell_names("rope", ["mixer.rope=false"]) == ["full", "rope=true"]
    assert cell_names("readout_matrix") == ["full", "readout_matrix=diagonal"]
    assert cell_names("feature_map") == ["full", "feature_map=elu", "feature_map=relu",
                                         "feature_map=identity", "feature_map=random_fourier"]


def test_cube_cells_are_eight_corners_and_softmax():
    names = cell_names("cube")
    assert len(names) == 9
    assert names[-1] == "cube_softmax"


@pytest.mark.parametrize("model", ["tiny", "125m"])
def test_state_split_keeps_state_size(model):
    cfg = compose_config([f"model={model}"])
    head_dim = cfg.model.d_model // cfg.model.n_heads
    full = cfg.model.state_dim * (head_dim + head_dim)   # R = P = head dim by default
    cells = ablation_cells("state_split", cfg)[1:]
    assert cells, "no state split fits"
    for cell in cells:
        split = compose_config([f"model={model}", *cell.overrides]).mixer
        assert split.state_dim * (split.feature_dim + head_dim) == full, cell.name
        assert split.state_dim != cfg.model.state_dim


def test_invalid_component_lists_choices():
    with pytest.raises(UserError, match="valid components: query_projection"):
        ablation_cells("nope", compose_config([]))


def test_non_interdomain_start_rejected():
    with pytest.raises(UserError, match="mixer=softmax"):
        ablation_cells("rope", compose_config(["mixer=softmax"]))


def test_cell_equal_to_full_rejected(tmp_path):
    overrides = quick_run_overrides(tmp_path) + ["mixer.readout=linear"]
    cfg = compose_config(overrides + ["ablate.component=query_projection"])
    with pytest.raises(UserError, match="same config as the full layer"):
        ablate(cfg, overrides)


def test_rows_deltas_skip_and_force(tmp_path):
    overrides = quick_run_overrides(tmp_path)
    cfg = compose_config(overrides + ["ablate.component=query_projection"])
    rows = ablate(cfg, overrides)
    path = tmp_path / "results" / "ablations.csv"
    written = read_rows(path)
    assert [row["cell"] for row in written] == ["full", "readout=linear"]
    assert [row["status"] for row in rows] == ["trained", "trained"]
    assert float(written[0]["delta_loss"]) == 0.0
    delta = float(written[1]["val_loss"]) - float(written[0]["val_loss"])
    assert float(written[1]["delta_loss"]) == pytest.approx(delta, abs=1e-12)
    assert written[1]["reference_run_id"] == written[0]["run_id"]
    assert written[1]["config_key"] == config_key(compose_config(overrides + ["mixer.readout=linear"]))
    for column in ("seed", "git_revision", "torch_version", "config", "overrides"):
        assert written[0][column], column
    assert len(read_rows(tmp_path / "results" / "runs.csv")) == 2

    again = ablate(cfg, overrides)
    assert [row["status"] for row in again] == ["skipped", "skipped"]
    assert len(read_rows(path)) == 2
    assert len(read_rows(tmp_path / "results" / "runs.csv")) == 2

    forced = ablate(compose_config(overrides + ["ablate.component=query_projection", "ablate.force=true"]), overrides)
    assert [row["status"] for row in forced] == ["trained", "trained"]
    assert len(read_rows(path)) == 4
    assert len(read_rows(tmp_path / "results" / "runs.csv")) == 4


def test_matching_run_is_reused(tmp_path):
    """A cell whose config was already trained by `idattn train` takes that run's numbers."""
    from idattn_cli.recipes.train import train

    overrides = quick_run_overrides(tmp_path)
    trained = train(compose_config(overrides), overrides)
    rows = ablate(compose_config(overrides + ["ablate.component=rope"]), overrides)
    assert rows[0]["status"] == "reused"
    assert rows[0]["run_id"] == trained["run_id"]
    assert rows[1]["status"] == "trained"
