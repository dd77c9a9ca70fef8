"""The generator's static world (users, videos, their latent factors) and its slowly drifting state.

Users are real KuaiRand-Pure users (their features shift activity and action rates); videos are real
KuaiRand-Pure videos (id and duration), each assigned one of `n_topics` topics from its first tag. Latent
vectors live in topic space [K]: a video is its topic's one-hot plus noise; a user has a long-term interest
that drifts daily (AR(1)) and a short-term interest, the running mean of the last few engaged videos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.datagen.schema import load_user_features_text, load_videos


@dataclass(frozen=True)
class SignalConfig:
    """The knobs of the planted signal; the defaults give KuaiRand-like rates (click ~35%, like ~2%)."""

    n_topics: int = 16
    item_noise: float = 0.25          # std of the non-topic part of a video vector
    w_long: float = 0.5               # weight of <long-term interest, video>
    w_short: float = 3.0              # weight of <short-term interest, video>: the sequential signal
    short_center: float = 0.2         # subtracted from <short, video>, so a cold user is not penalised much
    short_keep: float = 0.55          # EMA keep factor on each engaged event (~ last 2-4 engagements matter)
    session_keep: float = 0.6         # short-term interest kept across a session break
    day_keep: float = 0.4             # ... and across a night
    drift_rho: float = 0.8            # daily AR(1) coefficient of the long-term interest
    pop_rho: float = 0.85             # daily AR(1) coefficient of a video's popularity deviation
    pop_step: float = 0.6             # std of its daily innovation
    beta_pop: float = 0.35            # click-logit weight of today's popularity deviation
    click_bias: float = -1.05
    rand_share: float = 0.05          # share of uniformly random exposures (is_rand = 1)
    topic_share: float = 0.45         # share of exposures picked from the user's current favourite topic
    sessions_per_day: float = 1.6     # mean sessions of an active user per day (scaled by user activity)
    events_per_session: float = 6.0   # mean events per session (geometric)
    max_events_per_day: int = 120     # per user, bounds the lockstep's step count
    chunk_users: int = 50_000         # users simulated together; fixed, so results never depend on memory


# user_active_degree -> (probability of being active on a day, click-logit shift)
_DEGREE_EFFECTS: dict[str, tuple[float, float]] = {
    "full_active": (0.9, 0.15), "high_active": (0.75, 0.05), "middle_active": (0.55, 0.0),
    "low_active": (0.35, -0.15), "single_low_active": (0.25, -0.25), "2_14_day_new": (0.5, 0.1),
    "30day_retention": (0.4, 0.0), "day_new": (0.5, 0.1),
}
_UNKNOWN_DEGREE = (0.5, 0.0)


@dataclass(frozen=True)
class World:
    """Static arrays; U users, I videos, K topics.

    user_ids int64 [U]; user_rows: the users' feature rows as text [U, 31]; p_active, activity, and the
    per-user logit shifts click_shift, like_shift, social_shift float64 [U];
    video_ids, duration_ms int64 [I]; topic int64 [I]; vectors float32 [I, K]; quality float64 [I];
    lv_log_thr float64 [I] = log(min(duration, 18 s) / duration); by_topic int64 [I] (video indices sorted
    by topic) with topic_start int64 [K+1].
    """

    user_ids: np.ndarray
    user_rows: pd.DataFrame
    p_active: np.ndarray
    activity: np.ndarray
    click_shift: np.ndarray
    like_shift: np.ndarray
    social_shift: np.ndarray
    video_ids: np.ndarray
    duration_ms: np.ndarray
    topic: np.ndarray
    vectors: np.ndarray
    quality: np.ndarray
    lv_log_thr: np.ndarray
    by_topic: np.ndarray
    topic_start: np.ndarray
    renumbered: bool  # more users were asked for than exist: rows resampled, ids renumbered 0..U-1


@dataclass
class State:
    """What drifts: long-term and short-term interests float32 [U, K], popularity deviation float64 [I]."""

    long_term: np.ndarray
    short_term: np.ndarray
    popularity: np.ndarray


def _sample_users(users: int, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame, bool]:
    """Pick `users` real users: a subset with their real ids, or (more than exist) a resample renumbered 0..U-1."""
    text = load_user_features_text()
    if users <= len(text):
        rows = np.sort(rng.choice(len(text), size=users, replace=False))
        picked = text.iloc[rows].reset_index(drop=True)
        return picked["user_id"].astype("int64").to_numpy(), picked, False
    rows = rng.integers(0, len(text), size=users)
    picked = text.iloc[rows].reset_index(drop=True)
    picked["user_id"] = [str(i) for i in range(users)]
    return np.arange(users, dtype=np.int64), picked, True


def _user_effects(rows: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Activity and rate shifts from the contextual user features, plus per-user idiosyncratic noise."""
    degree = rows["user_active_degree"].to_numpy()
    eff = np.array([_DEGREE_EFFECTS.get(d, _UNKNOWN_DEGREE) for d in degree], dtype=np.float64).reshape(-1, 2)
    low_period = rows["is_lowactive_period"].astype("int64").to_numpy() == 1
    author = rows["is_video_author"].astype("int64").to_numpy() == 1
    fans = np.log1p(rows["fans_user_num"].astype("int64").to_numpy().clip(0))
    new_user = rows["register_days"].astype("int64").to_numpy() < 180
    n = len(rows)
    return {
        "p_active": np.where(low_period, 0.6, 1.0) * eff[:, 0],
        "activity": np.exp(rng.normal(0.0, 0.4, n)),
        "click_shift": eff[:, 1] + 0.15 * new_user + rng.normal(0.0, 0.5, n),
        "like_shift": 0.1 * fans + rng.normal(0.0, 0.7, n) - 0.3,
        "social_shift": 0.5 * author + 0.1 * fans + rng.normal(0.0, 0.5, n) - 0.3,
    }


def _video_arrays(cfg: SignalConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    videos = load_videos()
    n, k = len(videos), cfg.n_topics
    tag = videos["first_tag"].to_numpy()
    topic = np.where(tag >= 0, tag % k, rng.integers(0, k, n)).astype(np.int64)
    vectors = rng.normal(0.0, cfg.item_noise, (n, k)).astype(np.float32)
    vectors[np.arange(n), topic] += 1.0
    duration = videos["duration_ms"].to_numpy()
    by_topic = np.argsort(topic, kind="stable")
    return {
        "video_ids": videos["video_id"].to_numpy(), "duration_ms": duration, "topic": topic,
        "vectors": vectors, "quality": rng.normal(0.0, 0.5, n),
        "lv_log_thr": np.log(np.minimum(duration, 18_000) / duration),
        "by_topic": by_topic, "topic_start": np.searchsorted(topic[by_topic], np.arange(k + 1)),
    }


def build_world(users: int, cfg: SignalConfig, rng: np.random.Generator) -> tuple[World, State]:
    """Sample the users, load the videos and draw every latent factor; returns the world and its day-0 state."""
    if users < 1:
        raise ValueError(f"users={users}; expected at least 1")
    user_ids, rows, renumbered = _sample_users(users, rng)
    world = World(user_ids=user_ids, user_rows=rows, **_user_effects(rows, rng), **_video_arrays(cfg, rng),
                  renumbered=renumbered)
    state = State(
        long_term=rng.normal(0.0, 1.0, (users, cfg.n_topics)).astype(np.float32),
        short_term=np.zeros((users, cfg.n_topics), dtype=np.float32),
        popularity=rng.normal(0.0, 1.0, len(world.video_ids)),
    )
    return world, state


def advance_day(state: State, cfg: SignalConfig, rng: np.random.Generator) -> None:
    """One night passes: long-term interests and popularity take an AR(1) step, short-term interest fades."""
    rho = cfg.drift_rho
    noise = rng.standard_normal(state.long_term.shape, dtype=np.float32)
    state.long_term *= rho
    state.long_term += np.float32(np.sqrt(1.0 - rho * rho)) * noise
    state.short_term *= np.float32(cfg.day_keep)
    state.popularity = cfg.pop_rho * state.popularity + rng.normal(0.0, cfg.pop_step, state.popularity.shape)
