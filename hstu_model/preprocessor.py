"""Input preprocessor (contextual preprocessor of the spec): id embeddings -> model-width tokens (docs/design.md §5).

- Contextual tokens: one per contextual feature, ``Linear_f(emb_f) -> [D]`` (each feature its own map).
- Content (slice content encoder): the concatenated id embeddings of the uih (history) or candidate features,
  as they are, ``[N, E]``; history and candidates share the ``video_id`` table, so E matches.
- Action (simple action encoder): bit i of ``action_weight`` set -> slot i holds learned vector i, else zeros;
  one more slot holds ``log1p(watch_time) * w``. Candidates get one shared learned target vector instead,
  so their labels never reach the inputs. ``[N, (A+1)*E_a]``.
- Token = ContentMLP(content) + ActionMLP(action), each MLP ``Linear, SiLU, Linear, LayerNorm -> [D]``.
"""

from __future__ import annotations

import torch
from torch import nn

from hstu_model.config import ModelConfig


class SimpleMlp(nn.Module):
    """Linear(in, hidden), SiLU, Linear(hidden, out), LayerNorm(out): ``[N, in] -> [N, out]``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, out_dim),
                                 nn.LayerNorm(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SimpleActionEncoder(nn.Module):
    """Action bitmask (+ watch time) -> ``[N, (A+1)*E_a]``; candidates -> the shared target vector."""

    def __init__(self, action_weights: tuple[int, ...], action_embedding_dim: int):
        super().__init__()
        self.register_buffer("action_weights", torch.tensor(action_weights, dtype=torch.int64), persistent=False)
        num, dim = len(action_weights), action_embedding_dim
        self.action_table = nn.Parameter(torch.randn(num, dim) * 0.1)  # [A, E_a]
        self.watch_vector = nn.Parameter(torch.randn(dim) * 0.1)  # [E_a]
        self.target_vector = nn.Parameter(torch.randn((num + 1) * dim) * 0.1)  # [(A+1)*E_a]
        self.output_dim = (num + 1) * dim

    def forward(self, actions: torch.Tensor, watch_time: torch.Tensor) -> torch.Tensor:
        """actions int64 [N], watch_time float [N] (seconds) -> [N, (A+1)*E_a]."""
        bits = (actions[:, None] & self.action_weights[None, :]) != 0  # [N, A]
        slots = bits.unsqueeze(-1).to(self.action_table.dtype) * self.action_table  # [N, A, E_a]
        watch = torch.log1p(watch_time.clamp(min=0).to(self.watch_vector.dtype))[:, None] * self.watch_vector
        return torch.cat([slots.flatten(1), watch], dim=1)

    def targets(self, num: int) -> torch.Tensor:
        """The shared target action vector for ``num`` candidates: ``[num, (A+1)*E_a]``."""
        return self.target_vector.expand(num, -1)


class ContextualPreprocessor(nn.Module):
    """Builds contextual, history and candidate tokens from looked-up id embeddings."""

    def __init__(self, config: ModelConfig, embedding_dims: dict[str, int]):
        super().__init__()
        groups, pre = config.feature_groups, config.hstu.preprocessor
        width = config.hstu.stu.embedding_dim
        self.contextual_features = groups.contextual
        self.uih_features, self.candidate_features = groups.uih, groups.candidate
        self.contextual_projections = nn.ModuleDict(
            {f: nn.Linear(embedding_dims[f], width) for f in groups.contextual})
        self.content_dim = sum(embedding_dims[f] for f in groups.uih)
        candidate_dim = sum(embedding_dims[f] for f in groups.candidate)
        if candidate_dim != self.content_dim:
            raise ValueError(f"slice_content_encoder: candidate features {list(groups.candidate)} embed to "
                             f"{candidate_dim} dims but uih features {list(groups.uih)} to {self.content_dim}; "
                             "they must match (share the tables)")
        self.action_encoder = SimpleActionEncoder(pre.action_weights, pre.action_embedding_dim)
        self.content_mlp = SimpleMlp(self.content_dim, pre.content_mlp_hidden_dim, width)
        self.action_mlp = SimpleMlp(self.action_encoder.output_dim, pre.action_mlp_hidden_dim, width)

    def contextual(self, emb: dict[str, torch.Tensor]) -> torch.Tensor:
        """K contextual tokens per sample, sample by sample: ``[B*K, D]``."""
        maps = [self.contextual_projections[f] for f in self.contextual_features]
        inputs = [emb[f] for f in self.contextual_features]  # K x [B, E_f]
        if len(maps) > 1 and len({x.shape[1] for x in inputs}) == 1:
            # Equal widths: the K maps as one batched product. K separate linears cost ~10 small launches each
            # (casts under autocast, their gradients), and the training step is bound by issuing launches.
            weight = torch.stack([m.weight for m in maps])  # [K, D, E]
            bias = torch.stack([m.bias for m in maps])[:, None, :]  # [K, 1, D]
            tokens = torch.baddbmm(bias, torch.stack(inputs), weight.transpose(1, 2))  # [K, B, D]
            return tokens.transpose(0, 1).flatten(0, 1)  # [B, K, D] -> [B*K, D]
        tokens = [m(x) for m, x in zip(maps, inputs)]  # K x [B, D]
        return torch.stack(tokens, dim=1).flatten(0, 1)  # [B, K, D] -> [B*K, D]

    def content(self, emb: dict[str, torch.Tensor], candidates: bool) -> torch.Tensor:
        """Slice content encoder: concatenated id embeddings ``[N, E]``."""
        names = self.candidate_features if candidates else self.uih_features
        return torch.cat([emb[f] for f in names], dim=1)

    def history_and_candidates(self, content: torch.Tensor, actions: torch.Tensor, watch_time: torch.Tensor,
                               candidate_content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """History tokens ``[U, D]`` from content ``[U, E]``, actions int64 [U] and watch time [U]; candidate tokens
        ``[C, D]`` from their content plus the shared target action (no label input). Each MLP runs once over both
        (the step is bound by the host's launches, not by these rows)."""
        num = content.shape[0]
        tokens = self.content_mlp(torch.cat([content, candidate_content]))  # [U + C, D]
        action = self.action_mlp(torch.cat([self.action_encoder(actions, watch_time),
                                            self.action_encoder.targets(1)]))  # [U + 1, D]
        return tokens[:num] + action[:num], tokens[num:] + action[num:]  # the target row broadcast over C
