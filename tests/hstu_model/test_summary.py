from samples import small_config

from components.config import load_config
from hstu_model.model import build_model
from hstu_model.summary import summarize_model


def test_summary_lists_modules_and_the_true_total():
    config = small_config()
    text = summarize_model(config)
    total = sum(p.numel() for p in build_model(config, "cpu").parameters())
    assert text.splitlines()[-1].split()[-1] == f"{total:,}"
    assert "embeddings.d64.video_id [64 x 64]" in text and "stu.layers.1" in text and "tower" in text


def test_summary_of_spec_config_builds_without_memory():
    text = summarize_model(load_config("configs/dlrm_hstu_kuairand.config").model)
    assert "d=512, heads=4, layers=3" in text
    assert "embeddings.d64.video_id [100000 x 64]" in text and "stu.layers.2" in text
