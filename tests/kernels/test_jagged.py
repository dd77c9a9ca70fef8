"""jagged_concat / jagged_split / add_position_time on tiny hand-worked cases."""

from __future__ import annotations

import torch
from kernel_inputs import offsets_of

from kernels import JaggedLayout, add_position_time, jagged_concat, jagged_split


def test_concat_interleaves_per_sample_and_split_inverts_it():
    a = torch.tensor([[1.0], [2.0], [3.0]])  # sample 0: [1, 2], sample 1: [], sample 2: [3]
    b = torch.tensor([[10.0], [20.0], [30.0]])  # sample 0: [10], sample 1: [20, 30], sample 2: []
    offs_a, offs_b = offsets_of([2, 0, 1]), offsets_of([1, 2, 0])
    values, offsets = jagged_concat([a, b], [offs_a, offs_b])
    assert values.squeeze(1).tolist() == [1.0, 2.0, 10.0, 20.0, 30.0, 3.0]
    assert offsets.tolist() == [0, 3, 5, 6]
    back = jagged_split(values, offsets, [torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0])])
    assert torch.equal(back[0], a) and torch.equal(back[1], b)


def test_concat_gradient_routes_back_to_each_input():
    a = torch.randn(3, 2, requires_grad=True)
    b = torch.randn(2, 2, requires_grad=True)
    values, _ = jagged_concat([a, b], [offsets_of([1, 2]), offsets_of([2, 0])])
    weights = torch.arange(10.0).view(5, 2)
    grad_a, grad_b = torch.autograd.grad((values * weights).sum(), (a, b))
    # order in the result: a0, b0, b1, a1, a2
    assert grad_a.tolist() == [[0.0, 1.0], [6.0, 7.0], [8.0, 9.0]]
    assert grad_b.tolist() == [[2.0, 3.0], [4.0, 5.0]]


def test_add_position_time_sums_the_looked_up_rows():
    x = torch.zeros(3, 2)
    pos_table = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    time_table = torch.tensor([[0.0, 5.0], [0.0, 7.0], [0.0, 9.0]])
    out = add_position_time(x, torch.tensor([1, 0, 1]), torch.tensor([2, 2, 0]), pos_table, time_table)
    assert out.tolist() == [[2.0, 9.0], [1.0, 9.0], [2.0, 5.0]]
    no_time = add_position_time(x, torch.tensor([1, 0, 1]), None, pos_table, None)
    assert no_time[:, 1].abs().sum() == 0


def test_layout_rows_read_each_segment_back_and_serve_several_tensors():
    a, b = torch.arange(3.0), torch.arange(10.0, 12.0)  # samples [a0 | -], [a1, a2 | b0, b1]
    layout = JaggedLayout.of([offsets_of([1, 2]), offsets_of([0, 2])], [3, 2])
    out = layout.concat([a, b])
    assert out.tolist() == [0.0, 1.0, 2.0, 10.0, 11.0]
    assert layout.offsets.tolist() == [0, 1, 5]
    assert torch.equal(out[layout.rows[0]], a) and torch.equal(out[layout.rows[1]], b)
    ids = layout.concat([torch.tensor([7, 8, 9]), torch.tensor([1, 2])])  # a second tensor, same layout
    assert ids.tolist() == [7, 8, 9, 1, 2]
