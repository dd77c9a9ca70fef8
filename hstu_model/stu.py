"""The STU layer (Sequential Transduction Unit) on jagged tokens ``x [L, D]``, ``seq_offsets [B+1]`` (docs/design.md §5).

    n = LayerNorm(x);  u, v, q, k = split(Linear(n));  u = SiLU(u)
    o_i = sum_j mask(i, j) * SiLU(alpha * q_i . k_j) / S * v_j     (alpha = 1/sqrt(attention_dim), S = max_seq_len)
    y = u * Norm(o)            (group norm per head if use_group_norm, else layer norm)
    out = x + Dropout(Linear([u, o, y]))

The mask is docs/design.md §6's (contextual, causal history, candidates that see only the past and themselves); every
step runs through the ``kernels`` dispatcher with the layer's ``backend``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import kernels
from hstu_model.config import StuConfig


class StuLayer(nn.Module):
    """One STU layer; parameters laid out for the ``kernels`` ops (weights as ``[in, out]``)."""

    def __init__(self, config: StuConfig, max_seq_len: int, contextual_len: int, backend: str,
                 query_time: bool = False):
        super().__init__()
        self.query_time = query_time  # the attention mask of query-time history (kernels.hstu_attention)
        d, h = config.embedding_dim, config.num_heads
        self.num_heads, self.hidden_dim, self.attention_dim = h, config.hidden_dim, config.attention_dim
        self.split_sizes = [h * config.hidden_dim, h * config.hidden_dim, h * config.attention_dim,
                            h * config.attention_dim]  # u, v, q, k
        self.use_group_norm = config.use_group_norm
        self.dropout_p = config.output_dropout_ratio
        self.max_seq_len, self.contextual_len, self.backend = max_seq_len, contextual_len, backend
        self.alpha = 1.0 / math.sqrt(config.attention_dim)
        width = sum(self.split_sizes)
        self.input_norm_weight = nn.Parameter(torch.ones(d))
        self.input_norm_bias = nn.Parameter(torch.zeros(d))
        self.uvqk_weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(width, d)).t().contiguous())  # [D, W]
        self.uvqk_bias = nn.Parameter(torch.zeros(width))
        self.output_norm_weight = nn.Parameter(torch.ones(h * config.hidden_dim))
        self.output_norm_bias = nn.Parameter(torch.zeros(h * config.hidden_dim))
        self.output_weight = nn.Parameter(
            nn.init.xavier_uniform_(torch.empty(d, 3 * h * config.hidden_dim)).t().contiguous())  # [3*H*Dv, D]
        self.output_bias = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor, seq_offsets: torch.Tensor, num_targets: torch.Tensor) -> torch.Tensor:
        """``x [L, D]``, ``seq_offsets int64 [B+1]``, ``num_targets int64 [B]`` (candidates) -> ``[L, D]``."""
        u, v, q, k = kernels.layer_norm_uvqk(x, self.input_norm_weight, self.input_norm_bias, self.uvqk_weight,
                                             self.uvqk_bias, split_sizes=self.split_sizes, backend=self.backend)
        h = self.num_heads
        o = kernels.hstu_attention(
            q.reshape(-1, h, self.attention_dim), k.reshape(-1, h, self.attention_dim),
            v.reshape(-1, h, self.hidden_dim),  # [L, H*d] -> [L, H, d]
            seq_offsets, self.max_seq_len, alpha=self.alpha, num_targets=num_targets,
            contextual_len=self.contextual_len, query_time=self.query_time, check_lengths=False,
            backend=self.backend,
        ).reshape(-1, h * self.hidden_dim)  # [L, H, Dv] -> [L, H*Dv]
        y = kernels.norm_mul(o, u, self.output_norm_weight, self.output_norm_bias, num_heads=h,
                             use_group_norm=self.use_group_norm, backend=self.backend)
        return kernels.output_projection(u, o, y, x, self.output_weight, self.output_bias, dropout_p=self.dropout_p,
                                         training=self.training)


class StuStack(nn.Module):
    """``attn_num_layers`` STU layers applied in order."""

    def __init__(self, config: StuConfig, num_layers: int, max_seq_len: int, contextual_len: int, backend: str,
                 query_time: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(StuLayer(config, max_seq_len, contextual_len, backend, query_time)
                                    for _ in range(num_layers))

    def forward(self, x: torch.Tensor, seq_offsets: torch.Tensor, num_targets: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, seq_offsets, num_targets)
        return x
