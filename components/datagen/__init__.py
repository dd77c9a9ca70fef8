"""Built-in KuaiRand-shaped data generator with known ground truth (docs/design.md §9).

`generate_dataset` writes raw logs in the KuaiRand log schema (partitioned by day), the sampled real
KuaiRand-Pure user features, and every event's true action probabilities; `oracle_auc` scores those
probabilities on a window (the best achievable AUC), `baseline_auc` two static baselines below it.
"""

from components.datagen.baselines import baseline_auc
from components.datagen.generator import DEMO_DAYS, DEMO_USERS, GenerateResult, generate_dataset
from components.datagen.oracle import auc, oracle_auc, oracle_aucs
from components.datagen.schema import (
    ACTION_COLUMNS,
    EVENT_COLUMNS,
    TASK_NAMES,
    USER_FEATURE_COLUMNS,
    load_user_features,
)
from components.datagen.world import SignalConfig

__all__ = [
    "ACTION_COLUMNS", "DEMO_DAYS", "DEMO_USERS", "EVENT_COLUMNS", "GenerateResult", "SignalConfig", "TASK_NAMES",
    "USER_FEATURE_COLUMNS", "auc", "baseline_auc", "generate_dataset", "load_user_features", "oracle_auc",
    "oracle_aucs",
]
