"""Parameter counts per module of a DlrmHSTU built from a config (CLI: ``hstu model summary CONFIG``)."""

from __future__ import annotations

from hstu_model.config import ModelConfig
from hstu_model.model import build_model


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def summarize_model(config: ModelConfig) -> str:
    """A table of parameter counts: each top-level part (embedding tables one by one) and the total.

    The model is built on the "meta" device, so even the spec's large tables take no memory.
    """
    model = build_model(config, "meta")
    rows: list[tuple[str, int]] = []
    for key, collection in model.embeddings.collections.items():
        for name, table in collection.embeddings.items():
            rows.append((f"embeddings.{key}.{name} [{table.num_embeddings} x {table.embedding_dim}]",
                         _count(table)))
    for name, child in model.named_children():
        if name == "embeddings":
            continue
        if name == "stu":
            rows.extend((f"stu.layers.{i}", _count(layer)) for i, layer in enumerate(child.layers))
        elif _count(child):
            rows.append((name, _count(child)))
    total = _count(model)
    dense = total - _count(model.embeddings)
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"DlrmHSTU: d={config.hstu.stu.embedding_dim}, heads={config.hstu.stu.num_heads}, "
             f"layers={config.hstu.attn_num_layers}, tasks={len(config.tasks)}, max_seq_len={config.max_seq_len}",
             f"{'module':<{width}}{'parameters':>14}"]
    lines += [f"{name:<{width}}{count:>14,}" for name, count in rows]
    lines += [f"{'dense (all but embeddings)':<{width}}{dense:>14,}", f"{'total':<{width}}{total:>14,}"]
    return "\n".join(lines)
