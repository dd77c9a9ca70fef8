"""The five baselines of the suite: each fits on the training windows' candidates and scores the eval window's.

Every scorer takes a ``SuiteData`` (the two candidate frames of ``components.baselines.features``) and returns
scores float64 ``[M, T]`` (M eval candidates, T tasks in config order); only their ranking matters (AUC).

- popularity: the item's smoothed positive rate over the training candidates (unseen items: the global rate).
- logistic: scikit-learn L2 logistic regression on one-hot user, item, contextual ids and hour; C picked on
  the last training window.
- history_rate: the user's own smoothed rate of the task among the sample's history; no fitting.
- history_popularity: logistic regression on the two logits (history rate, item popularity).
- gbdt: LightGBM on history, position, hour, context and out-of-window item/user rates, and the item counters
  when the samples carry them (``data_config.item_counter_days``: the model reads them, so the baseline does).

Training rows get item and user rates that leave their own window out (``out_of_window_counts``): with
in-window rates the fitted weights would trust the rates more than the eval window, which never sees its own
labels, can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from components.baselines.features import history_prior, history_rate, out_of_window_counts, smoothed
from hstu_model.batch import GROUP_COLUMN
from hstu_model.metrics import auc

ITEM_SMOOTHING = 20.0  # pseudo-candidates at the global rate added to each item's and user's counts
HISTORY_SMOOTHING = 5.0  # pseudo-events at the pooled history rate added to each history
LOGISTIC_C = (0.03, 0.1, 0.3, 1.0)  # inverse L2 strengths tried on the last training window
SEED = 0


@dataclass(frozen=True)
class SuiteData:
    """The candidates of the training windows and of the eval window.

    Attributes:
        train, eval: candidate frames (``components.baselines.features.candidate_frame``), N and M rows.
        y_train: float64 [N, T] 0/1 labels. tasks: T task names. contextual: the contextual feature columns.
    """

    train: pd.DataFrame
    eval: pd.DataFrame
    y_train: np.ndarray
    tasks: tuple[str, ...]
    contextual: tuple[str, ...]

    @property
    def last_window(self) -> np.ndarray:
        """bool [N]: the training rows of the latest training window (the validation rows)."""
        w = self.train["window"].to_numpy()
        return w == w.max()


def _one_class(y: np.ndarray) -> bool:
    return len(np.unique(y)) < 2


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def popularity(data: SuiteData) -> np.ndarray:
    """The item's smoothed rate per task over the training candidates -> [M, T]."""
    out = np.empty((len(data.eval), len(data.tasks)))
    for t in range(len(data.tasks)):
        prior = float(data.y_train[:, t].mean())
        _, _, pos, n = out_of_window_counts(data.train, data.y_train[:, t], "item", data.eval["item"])
        out[:, t] = smoothed(pos, n, prior, ITEM_SMOOTHING)
    return out


def _fit_logistic(x, y: np.ndarray, c: float) -> LogisticRegression:
    # liblinear's dual solver: ~10x faster than lbfgs or the primal on one-hot ids (10k columns, 76k rows of
    # generated data: 0.7 s vs 8-17 s) at the same AUC; seeded, so deterministic.
    return LogisticRegression(C=c, solver="liblinear", dual=True, max_iter=1000, random_state=SEED).fit(x, y)


def _pick_c(x, y: np.ndarray, valid: np.ndarray) -> float:
    """The C of ``LOGISTIC_C`` with the best AUC on the ``valid`` rows when fitted on the others (1.0 if moot)."""
    if valid.all() or _one_class(y[~valid]) or _one_class(y[valid]):
        return 1.0
    scores = {c: auc(_fit_logistic(x[~valid], y[~valid], c).decision_function(x[valid]), y[valid])
              for c in LOGISTIC_C}
    return max(scores, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation


def logistic(data: SuiteData) -> np.ndarray:
    """L2 logistic regression per task on one-hot user, item, contextual ids and hour -> logits [M, T]."""
    cols = list(dict.fromkeys([GROUP_COLUMN, "item", *data.contextual, "hour"]))
    encoder = OneHotEncoder(handle_unknown="ignore").fit(data.train[cols])
    x_train, x_eval = encoder.transform(data.train[cols]).tocsr(), encoder.transform(data.eval[cols]).tocsr()
    out = np.zeros((len(data.eval), len(data.tasks)))
    for t in range(len(data.tasks)):
        y = data.y_train[:, t]
        if _one_class(y):
            continue  # nothing to fit: a constant score
        c = _pick_c(x_train, y, data.last_window)
        out[:, t] = _fit_logistic(x_train, y, c).decision_function(x_eval)
    return out


def history_rate_scores(data: SuiteData) -> np.ndarray:
    """The sample's smoothed history rate per task (prior: the eval window's pooled history rate) -> [M, T]."""
    return np.stack([history_rate(data.eval, task, history_prior(data.eval, task), HISTORY_SMOOTHING)
                     for task in data.tasks], axis=1)


def _item_rates(data: SuiteData, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed item rates of task t: training rows out of their window [N], eval rows [M]."""
    prior = float(data.y_train[:, t].mean())
    train_pos, train_n, eval_pos, eval_n = out_of_window_counts(data.train, data.y_train[:, t], "item",
                                                                data.eval["item"])
    return smoothed(train_pos, train_n, prior, ITEM_SMOOTHING), smoothed(eval_pos, eval_n, prior, ITEM_SMOOTHING)


def history_popularity(data: SuiteData) -> np.ndarray:
    """Logistic regression per task on (logit history rate, logit item rate) -> logits [M, T]."""
    out = np.zeros((len(data.eval), len(data.tasks)))
    for t, task in enumerate(data.tasks):
        y = data.y_train[:, t]
        if _one_class(y):
            continue
        prior = history_prior(data.train, task)
        item_train, item_eval = _item_rates(data, t)
        x_train = np.stack([_logit(history_rate(data.train, task, prior, HISTORY_SMOOTHING)), _logit(item_train)], 1)
        x_eval = np.stack([_logit(history_rate(data.eval, task, prior, HISTORY_SMOOTHING)), _logit(item_eval)], 1)
        out[:, t] = _fit_logistic(x_train, y, 1.0).decision_function(x_eval)
    return out


def _gbdt_features(data: SuiteData) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """GBDT features of the training [N, F] and eval [M, F] rows, and the categorical columns among them."""
    categorical = [c for c in data.contextual if c != GROUP_COLUMN]  # the user enters through its rates
    base = ["hist_len", "position", "hour", "in_history", *categorical]
    train, evl = data.train[base].copy(), data.eval[base].copy()
    _, n, _, eval_n = out_of_window_counts(data.train, np.zeros(len(data.train)), "item", data.eval["item"])
    train["item_count"], evl["item_count"] = n, eval_n  # out of window too: a training row's count excludes it
    if "item_n" in data.train:
        train["item_counter_n"], evl["item_counter_n"] = data.train["item_n"].to_numpy(), data.eval["item_n"].to_numpy()
    for t, task in enumerate(data.tasks):
        y, prior = data.y_train[:, t], float(data.y_train[:, t].mean())
        hist_prior = history_prior(data.train, task)
        for frame, source in ((train, data.train), (evl, data.eval)):
            frame[f"hist_rate_{task}"] = history_rate(source, task, hist_prior, HISTORY_SMOOTHING)
            frame[f"recent_rate_{task}"] = history_rate(source, task, hist_prior, HISTORY_SMOOTHING, recent=True)
        if f"item_pos_{task}" in data.train:  # the item counters the model reads too (same samples)
            for frame, source in ((train, data.train), (evl, data.eval)):
                frame[f"item_counter_rate_{task}"] = smoothed(source[f"item_pos_{task}"], source["item_n"], prior,
                                                              ITEM_SMOOTHING)
        for key in ("item", GROUP_COLUMN):
            pos, n, eval_pos, eval_n = out_of_window_counts(data.train, y, key, data.eval[key])
            train[f"{key}_rate_{task}"] = smoothed(pos, n, prior, ITEM_SMOOTHING)
            evl[f"{key}_rate_{task}"] = smoothed(eval_pos, eval_n, prior, ITEM_SMOOTHING)
    return train, evl, categorical


def _lgbm(n_estimators: int) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(n_estimators=n_estimators, learning_rate=0.05, num_leaves=15, min_child_samples=40,
                              reg_lambda=1.0, colsample_bytree=0.8, random_state=SEED, deterministic=True,
                              force_col_wise=True, n_jobs=1, verbose=-1)  # more threads: slower when cores are shared


def _fit_gbdt(x: pd.DataFrame, y: np.ndarray, valid: np.ndarray, categorical: list[str]) -> lgb.LGBMClassifier:
    """Early stopping on the ``valid`` rows, then a refit on all rows with the best number of trees."""
    rounds = 200
    if not valid.all() and not _one_class(y[~valid]) and not _one_class(y[valid]):
        probe = _lgbm(1000).fit(x[~valid], y[~valid], eval_X=(x[valid],), eval_y=(y[valid],), eval_metric="auc",
                                categorical_feature=categorical,
                                callbacks=[lgb.early_stopping(50, first_metric_only=True, verbose=False)])
        rounds = max(int(probe.best_iteration_ or 0), 10)
    return _lgbm(rounds).fit(x, y, categorical_feature=categorical)


def gbdt(data: SuiteData) -> np.ndarray:
    """LightGBM per task on history, position, hour, context and out-of-window rates -> logits [M, T]."""
    x_train, x_eval, categorical = _gbdt_features(data)
    out = np.zeros((len(data.eval), len(data.tasks)))
    for t in range(len(data.tasks)):
        y = data.y_train[:, t]
        if _one_class(y):
            continue
        model = _fit_gbdt(x_train, y, data.last_window, categorical)
        out[:, t] = model.predict(x_eval, raw_score=True)
    return out


BASELINES: dict[str, Callable[[SuiteData], np.ndarray]] = {
    "popularity": popularity, "logistic": logistic, "history_rate": history_rate_scores,
    "history_popularity": history_popularity, "gbdt": gbdt,
}
