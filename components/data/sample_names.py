"""The sample table's column names, derived from the config's feature groups (docs/design.md §4.3).

Kept apart from the Spark job so that code without Spark (the pandas reference, benchmarks on a machine
without Java) can name the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import PipelineConfig
from hstu_model.batch import ITEM_COUNTS_COLUMN

__all__ = ["ITEM_COUNTS_COLUMN", "SampleNames"]


@dataclass(frozen=True)
class SampleNames:
    """Output column names, from the config's feature groups (defaults: docs/design.md §4.3 names)."""

    contextual: tuple[str, ...] = ("user_id",)
    video_id: str = "video_id"
    action_weight: str = "action_weight"
    watch_time: str = "watch_time"
    action_timestamp: str = "action_timestamp"
    item_video_id: str = "item_video_id"
    item_query_time: str = "item_query_time"
    item_action_weight: str = "item_action_weight"
    item_watch_time: str = "item_watch_time"
    # a side feature beside the video ids (components/id_features.py SIDE_FEATURES), "" when the model has none
    side_feature: str = ""
    item_side_feature: str = ""

    @classmethod
    def from_config(cls, config: PipelineConfig) -> SampleNames:
        g = config.model.feature_groups
        first = lambda names, default: names[0] if names else default  # noqa: E731
        labels = [t.label_name for t in config.model.tasks if t.label_name]
        ctx = tuple(g.contextual) if "user_id" in g.contextual else ("user_id", *g.contextual)
        return cls(ctx, first(g.uih, "video_id"), first(g.uih_action, "action_weight"),
                   first(g.uih_watchtime, "watch_time"), first(g.uih_timestamp, "action_timestamp"),
                   first(g.candidate, "item_video_id"), first(g.candidate_timestamp, "item_query_time"),
                   labels[0] if labels else "item_action_weight", "item_watch_time",
                   g.uih[1] if len(g.uih) > 1 else "", g.candidate[1] if len(g.candidate) > 1 else "")
