"""The PyTorch and Triton kernel paths of the whole model agree (docs/design.md §5)."""

import dataclasses

import pytest
import torch
from samples import make_rows, small_config

from hstu_model.batch import collate
from hstu_model.model import build_model


def _twin_models(device: str):
    config = small_config()
    torch.manual_seed(0)
    triton_model = build_model(dataclasses.replace(config, kernel="TRITON"), device, strict_kernel=True)
    pytorch_model = build_model(dataclasses.replace(config, kernel="PYTORCH"), device)
    pytorch_model.load_state_dict(triton_model.state_dict())
    assert (triton_model.backend, pytorch_model.backend) == ("triton", "pytorch")
    return config, triton_model.eval(), pytorch_model.eval()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU interpreter test; the gpu test covers CUDA")
def test_triton_and_pytorch_paths_agree_under_the_interpreter():
    config, triton_model, pytorch_model = _twin_models("cpu")
    batch = collate(make_rows(2, seed=3, min_history=3, max_history=6, max_candidates=3), config)
    with torch.no_grad():
        torch.testing.assert_close(triton_model(batch), pytorch_model(batch), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_triton_and_pytorch_paths_agree_on_gpu_in_bf16():
    config, triton_model, pytorch_model = _twin_models("cuda")
    batch = collate(make_rows(16, seed=4, min_history=20, max_history=200, max_candidates=20), config).to("cuda")
    with torch.no_grad():
        reference = pytorch_model(batch).double()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            got = triton_model(batch).double()
            twin = pytorch_model(batch).double()
    error, twin_error = (got - reference).abs().max().item(), (twin - reference).abs().max().item()
    assert error <= 2 * twin_error + 1e-2, f"triton bf16 error {error:.3g} vs pytorch bf16 error {twin_error:.3g}"
