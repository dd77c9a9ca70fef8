"""Learning on a planted signal, checkpoint round trip and inference export (CPU, small config)."""

import pytest
import torch
from samples import make_rows, small_config, train_steps

from hstu_model.batch import collate
from hstu_model.export import export_model, inference_inputs
from hstu_model.losses import task_labels
from hstu_model.metrics import auc, grouped_auc
from hstu_model.model import build_model


@pytest.fixture(scope="module")
def trained():
    """A small model trained 240 steps on 512 synthetic samples; returns (config, model, losses, eval batch)."""
    torch.manual_seed(0)
    config = small_config()
    train = [collate(make_rows(32, seed=s), config) for s in range(16)]
    model = build_model(config, "cpu").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = train_steps(model, train, optimizer, 240, config.tasks)
    return config, model.eval(), losses, collate(make_rows(128, seed=999), config)


def test_loss_decreases_and_click_auc_beats_chance_on_planted_signal(trained):
    config, model, losses, held_out = trained
    first, last = sum(losses[:16]) / 16, sum(losses[-16:]) / 16
    assert last < first - 0.2, f"mean loss {first:.3f} -> {last:.3f}"
    with torch.no_grad():
        logits = model(held_out)
    labels = task_labels(held_out, config.tasks)
    assert auc(logits[:, 0], labels[:, 0]) > 0.6
    assert grouped_auc(logits[:, 0], labels[:, 0], held_out.user_ids) > 0.6


def test_state_dict_round_trip_gives_identical_predictions(trained, tmp_path):
    config, model, _, held_out = trained
    torch.save(model.state_dict(), tmp_path / "model.pt")
    torch.manual_seed(123)
    fresh = build_model(config, "cpu").eval()
    with torch.no_grad():
        assert not torch.equal(fresh(held_out), model(held_out))
        fresh.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
        assert torch.equal(fresh(held_out), model(held_out))


def test_exported_program_gives_the_same_predictions(trained, tmp_path):
    config, model, _, held_out = trained
    example = collate(make_rows(4, seed=5, min_history=2), config)
    program = export_model(model, example)
    torch.export.save(program, tmp_path / "model.pt2")
    loaded = torch.export.load(tmp_path / "model.pt2").module()
    with torch.no_grad():
        expected = model(held_out)  # a batch of another size than the example: shapes are dynamic
        torch.testing.assert_close(loaded(*inference_inputs(held_out)), expected, rtol=1e-5, atol=1e-5)
