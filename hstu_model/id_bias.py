"""The wide part: one learned bias per task for every contextual id and candidate item id (an extension of the spec).

    logits[c, t] += sum_f bias_f[id_f(c), t]     f over the contextual features and the candidate features

A logistic regression on one-hot ids learns exactly these numbers, and on a few thousand samples it beats the
deep part alone (measured: benchmarks/results/QUALITY_NOTES.md): a 64-wide id embedding pushed through MLPs
memorises its training rows, while a T-wide bias with weight decay generalises like the logistic one. The
biases are TorchRec tables (one ``EmbeddingCollection``, a column per task, rows = the id table's rows),
so the trainer's fused sparse optimizer updates them and a sharder can place them like the other tables (their
width is rounded up to a multiple of 4, which sharded tables need; the extra columns stay zero).
Rows start at zero: an id the model never saw adds nothing.
"""

from __future__ import annotations

import torch
from torch import nn
from torchrec.modules.embedding_configs import EmbeddingConfig
from torchrec.modules.embedding_modules import EmbeddingCollection

from hstu_model.config import ModelConfig
from hstu_model.embeddings import IdEmbeddings
from kernels.jagged import segment_index


def bias_features(config: ModelConfig) -> tuple[str, ...]:
    """The features with a bias: every contextual feature and every candidate feature."""
    return (*config.feature_groups.contextual, *config.feature_groups.candidate)


class IdBias(nn.Module):
    """``features -> [C, T]``: the summed per-task biases of each candidate's contextual and item ids."""

    def __init__(self, config: ModelConfig, device: torch.device | str):
        super().__init__()
        wanted = set(bias_features(config))
        self.num_tasks = len(config.tasks)
        # Sharded tables (FBGEMM's TBE) need a dim that is a multiple of 4: the extra columns are never read,
        # so they get no gradient and stay zero.
        dim = -(-self.num_tasks // 4) * 4
        tables = []
        for t in config.embedding_tables:
            names = [f for f in t.feature_names if f in wanted]
            if names:
                tables.append(EmbeddingConfig(name=f"{t.name}_bias", embedding_dim=dim,
                                              num_embeddings=t.num_embeddings, feature_names=names))
        collection = EmbeddingCollection(tables=tables, device=torch.device(device))
        if torch.device(device).type != "meta":
            with torch.no_grad():
                for weight in collection.parameters():
                    weight.zero_()
        self.lookup = IdEmbeddings({"bias": collection})
        self.contextual = config.feature_groups.contextual
        self.candidate = config.feature_groups.candidate

    def forward(self, contextual: dict[str, torch.Tensor], candidate: dict[str, torch.Tensor],
                uih_lengths: torch.Tensor, candidate_lengths: torch.Tensor) -> torch.Tensor:
        """Contextual ids int64 [B] and candidate ids int64 [C] per feature -> per-task bias ``[C, T]``."""
        ones = torch.ones_like(uih_lengths)
        features = {f: (contextual[f], ones) for f in self.contextual}
        features.update({f: (candidate[f], candidate_lengths) for f in self.candidate})
        rows = {f: r[:, :self.num_tasks] for f, r in self.lookup(features).items()}  # [N_f, T]
        sample, _ = segment_index(candidate_lengths, candidate[self.candidate[0]].numel())  # [C]
        bias = sum(rows[f] for f in self.candidate)  # [C, T]
        for f in self.contextual:
            bias = bias + rows[f][sample]  # [B, T] -> [C, T]
        return bias
