"""One day of one chunk of users, simulated in lockstep: step t advances every user that has a t-th event.

Per event (user u, video i, time t), with z = w_long <long_u, v_i> + w_short (<short_u, v_i> - c):
  click      ~ Bern(p_c),  p_c = sigmoid(b + shift_u + quality_i + beta * pop_i(day) + z + hour(t) - 0.3 rand)
  log(play / duration) = mu_click + 0.7 * Logistic noise, mu depends on click and z
  long_view  = play >= min(duration, 18 s)           (so P(long_view | click) is a closed-form sigmoid)
  like, follow, comment, forward, profile_enter ~ click * Bern(sigmoid(a + shift_u + c z + d long_view))
  hate       ~ (1 - click) * Bern(sigmoid(h - 0.7 z))
The stored truth is each action's probability before the event happens (click and watch marginalised), so
no model that sees only the past can beat it in expectation. Engaged events (click and long view) pull the
short-term interest towards the video: recent history predicts the next actions.

Beside it the truth holds ``p_start_<flag>``: the same probability with the short-term interest frozen at the
start of the day (as the night left it). A model whose history ends at a one-day window's start (docs/design.md §4.3)
cannot see the day's moves of that interest, so this is its reference; ``p_`` stays the full oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.datagen.schema import ACTION_COLUMNS, PROB_COLUMNS, START_PROB_COLUMNS
from components.datagen.world import SignalConfig, State, World

DAY_MS = 86_400_000
_HOUR_WEIGHTS = np.array([3, 2, 1, 1, 1, 1, 2, 4, 6, 6, 6, 7, 9, 8, 6, 6, 7, 8, 10, 12, 13, 13, 10, 6], float)
HOUR_P = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()
HOUR_CLICK = 0.25 * np.cos(2 * np.pi * (np.arange(24) - 21) / 24)   # evenings click more
_WATCH_SCALE = 0.7
# (intercept, weight of z, weight of long_view) per conditional action; shift: "like" or "social".
_CONDITIONAL = {
    "is_like": (-4.6, 0.6, 1.4, "like"), "is_follow": (-6.3, 0.5, 1.0, "social"),
    "is_comment": (-5.9, 0.4, 0.8, "social"), "is_forward": (-6.4, 0.4, 0.8, "social"),
    "is_profile_enter": (-4.8, 0.5, 0.6, "social"),
}
TAB_P = np.array([0.55, 0.2, 0.1, 0.08, 0.05, 0.02])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class _Plan:
    """Event slots of one chunk-day, user-major: n_events int64 [M], offsets int64 [M], first, start [T]."""

    n_events: np.ndarray
    offsets: np.ndarray
    first: np.ndarray     # bool [T]: the slot opens a session
    start_ms: np.ndarray  # int64 [T]: the session's planned start, ms after midnight


def _plan(world: World, uidx: np.ndarray, weekend: bool, cfg: SignalConfig, rng: np.random.Generator) -> _Plan:
    """Draw who is active, their sessions (hour-of-day profile) and session lengths."""
    m = len(uidx)
    active = rng.random(m) < world.p_active[uidx]
    lam = cfg.sessions_per_day * world.activity[uidx] * (1.2 if weekend else 1.0)
    n_sess = np.where(active, 1 + rng.poisson(np.maximum(lam - 1.0, 0.0)), 0)
    owner = np.repeat(np.arange(m), n_sess)
    start = rng.choice(24, size=len(owner), p=HOUR_P) * 3_600_000 + rng.integers(0, 3_600_000, len(owner))
    length = rng.geometric(1.0 / cfg.events_per_session, len(owner))
    order = np.lexsort((start, owner))
    owner, start, length = owner[order], start[order], length[order]
    first = np.zeros(int(length.sum()), dtype=bool)
    first[np.cumsum(length) - length] = True
    ev_owner, ev_start = np.repeat(owner, length), np.repeat(start, length)
    counts = np.bincount(ev_owner, minlength=m)
    rank = np.arange(len(ev_owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = rank < cfg.max_events_per_day
    n_events = np.bincount(ev_owner[keep], minlength=m)
    return _Plan(n_events, np.cumsum(n_events) - n_events, first[keep], ev_start[keep])


def _expose(world: World, cum_pop: np.ndarray, cum_topic: np.ndarray, taste: np.ndarray, cfg: SignalConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick a video per user: uniform (is_rand), from the favourite topic, or by popularity.

    Args: taste float32 [m, K] (current interest). Returns video index int64 [m], is_rand bool [m].
    """
    m, k = taste.shape
    mode, r = rng.random(m), rng.random(m)
    by_pop = np.searchsorted(cum_pop, r * cum_pop[-1], side="right")
    gumbel = -np.log(-np.log(rng.random((m, k), dtype=np.float32) + np.float32(1e-12)))
    topic = np.argmax(taste + gumbel, axis=1)
    lo_idx, hi_idx = world.topic_start[topic], world.topic_start[topic + 1]
    lo = np.where(lo_idx > 0, cum_topic[lo_idx - 1], 0.0)
    hi = cum_topic[hi_idx - 1]
    j = np.clip(np.searchsorted(cum_topic, lo + r * (hi - lo), side="right"), lo_idx, hi_idx - 1)
    is_rand = mode < cfg.rand_share
    video = np.where(mode < cfg.rand_share + cfg.topic_share, world.by_topic[j], by_pop)
    video = np.where(is_rand, rng.integers(0, len(world.video_ids), m), video)
    return video, is_rand


def _probabilities(world: World, state: State, g: np.ndarray, video: np.ndarray, z: np.ndarray,
                   logit_extra: np.ndarray, cfg: SignalConfig) -> dict[str, np.ndarray]:
    """The true probabilities of m events (see the module docstring), plus the pieces the draws need:
    ``click`` (P(click)), ``q1``/``q0`` (P(long view | click or not)), ``<flag>_1``/``<flag>_0`` (P(flag | click,
    long view or not)) and ``hate`` (P(hate | no click))."""
    p_c = _sigmoid(cfg.click_bias + world.click_shift[g] + world.quality[video]
                   + cfg.beta_pop * state.popularity[video] + z + logit_extra)
    thr = world.lv_log_thr[video]
    mu1 = -1.1 + 0.35 * z + 0.3 * world.quality[video]
    mu0 = -3.4 + 0.2 * z
    q1, q0 = _sigmoid((mu1 - thr) / _WATCH_SCALE), _sigmoid((mu0 - thr) / _WATCH_SCALE)
    out = {"click": p_c, "q1": q1, "q0": q0, "mu1": mu1, "mu0": mu0,
           "p_is_click": p_c, "p_long_view": p_c * q1 + (1.0 - p_c) * q0}
    shifts = {"like": world.like_shift[g], "social": world.social_shift[g]}
    for name, (a, cz, clv, shift) in _CONDITIONAL.items():
        base = a + shifts[shift] + cz * z
        p1, p0 = _sigmoid(base + clv), _sigmoid(base)
        out[f"{name}_1"], out[f"{name}_0"] = p1, p0
        out[f"p_{name}"] = p_c * (q1 * p1 + (1.0 - q1) * p0)
    out["hate"] = _sigmoid(-6.0 - 0.7 * z)
    out["p_is_hate"] = (1.0 - p_c) * out["hate"]
    return out


def _act(world: World, video: np.ndarray, probs: dict[str, np.ndarray],
         rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw the actions of m events from their probabilities (``_probabilities``)."""
    m = len(video)
    thr = world.lv_log_thr[video]
    click = rng.random(m) < probs["click"]
    u = rng.random(m)
    log_frac = np.where(click, probs["mu1"], probs["mu0"]) + _WATCH_SCALE * np.log(u / (1.0 - u) + 1e-300)
    long_view = log_frac >= thr
    dur = world.duration_ms[video]
    play = np.floor(np.exp(np.minimum(log_frac, np.log(3.0))) * dur).astype(np.int64)
    thr_ms = np.minimum(dur, 18_000)
    play = np.where(long_view, np.maximum(play, thr_ms), np.minimum(play, thr_ms - 1))
    out = {"is_click": click, "long_view": long_view, "play_time_ms": play, "duration_ms": dur}
    for name in _CONDITIONAL:
        out[name] = click & (rng.random(m) < np.where(long_view, probs[f"{name}_1"], probs[f"{name}_0"]))
    out["is_hate"] = ~click & (rng.random(m) < probs["hate"])
    return out


class _Record:
    """Per-slot outputs of one chunk-day, filled step by step at the slots' positions."""

    def __init__(self, n: int) -> None:
        self.alive = np.zeros(n, dtype=bool)
        self.ints = {c: np.zeros(n, dtype=np.int64) for c in ("video", "time", "play_time_ms", "duration_ms")}
        self.flags = {c: np.zeros(n, dtype=bool) for c in ("is_rand", *_FLAG_COLUMNS)}
        self.probs = {c: np.zeros(n, dtype=np.float32) for c in _PROB_COLUMNS}

    def put(self, pos: np.ndarray, alive: np.ndarray, video: np.ndarray, time: np.ndarray,
            is_rand: np.ndarray, acts: dict[str, np.ndarray]) -> None:
        self.alive[pos] = alive
        self.ints["video"][pos], self.ints["time"][pos] = video, time
        self.ints["play_time_ms"][pos], self.ints["duration_ms"][pos] = acts["play_time_ms"], acts["duration_ms"]
        self.flags["is_rand"][pos] = is_rand
        for c in _FLAG_COLUMNS:
            self.flags[c][pos] = acts[c]
        for c in _PROB_COLUMNS:
            self.probs[c][pos] = acts[c]


_FLAG_COLUMNS = ACTION_COLUMNS
_PROB_COLUMNS = PROB_COLUMNS + START_PROB_COLUMNS


def _step(t: int, m: int, ctx: dict, rng: np.random.Generator) -> None:
    """Advance the m users that have a t-th event today (they are the first m in lockstep order)."""
    world, state, cfg, plan = ctx["world"], ctx["state"], ctx["cfg"], ctx["plan"]
    pos = ctx["off"][:m] + t
    first, start = plan.first[pos], plan.start_ms[pos]
    short, long_term, prev_end, alive = ctx["short"][:m], ctx["long"][:m], ctx["prev_end"][:m], ctx["alive"][:m]
    if first.any():
        short[first] *= np.float32(cfg.session_keep)
    gap = rng.exponential(4_000.0, m).astype(np.int64) + 1_000
    time = np.where(first, np.maximum(start, prev_end + 60_000), prev_end + gap)
    alive &= time < DAY_MS  # a user whose next event would fall after midnight stops for the day
    video, is_rand = _expose(world, ctx["cum_pop"], ctx["cum_topic"], 0.5 * long_term + 4.0 * short, cfg, rng)
    vec = world.vectors[video]
    extra = HOUR_CLICK[np.minimum(time // 3_600_000, 23)] - 0.3 * is_rand

    def probabilities(short_term: np.ndarray) -> dict[str, np.ndarray]:
        z = (cfg.w_long * np.einsum("ij,ij->i", long_term, vec)
             + cfg.w_short * (np.einsum("ij,ij->i", short_term, vec) - cfg.short_center)).astype(np.float64)
        return _probabilities(world, state, ctx["g"][:m], video, z, extra, cfg)

    probs, at_start = probabilities(short), probabilities(ctx["short_start"][:m])
    acts = {**_act(world, video, probs, rng), **{c: probs[c] for c in PROB_COLUMNS},
            **{s: at_start[c] for s, c in zip(START_PROB_COLUMNS, PROB_COLUMNS)}}
    prev_end[:] = time + acts["play_time_ms"]
    engaged = acts["is_click"] & acts["long_view"] & alive
    keep = np.float32(cfg.short_keep)
    short[engaged] = keep * short[engaged] + (1 - keep) * vec[engaged]
    ctx["rec"].put(pos, alive, video, time, is_rand, acts)


def simulate_chunk_day(world: World, state: State, cfg: SignalConfig, uidx: np.ndarray, day_ms: int,
                       weekend: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Simulate one day for the users `uidx` (int64 [M], ascending); updates their short-term interest.

    Returns:
        columns [T'] keyed by name: user_id, video_id, time_ms (epoch ms), the eight action flags (bool),
        play_time_ms, duration_ms, is_rand (bool), tab, profile_stay_time, comment_stay_time and the eight
        probabilities p_<flag> (float32); ordered by (user_id, time_ms).
    """
    plan = _plan(world, uidx, weekend, cfg, rng)
    order = np.argsort(-plan.n_events, kind="stable")
    n_sorted = plan.n_events[order]
    n_steps = int(n_sorted[0]) if len(n_sorted) else 0
    active = np.searchsorted(-n_sorted, -np.arange(n_steps), side="left")  # users with > t events
    g = uidx[order]
    pop_w = np.exp(state.popularity)
    ctx = {"world": world, "state": state, "cfg": cfg, "plan": plan, "off": plan.offsets[order], "g": g,
           "short": state.short_term[g], "short_start": state.short_term[g].copy(), "long": state.long_term[g],
           "rec": _Record(int(plan.n_events.sum())),
           "prev_end": np.full(len(g), -10**9, dtype=np.int64), "alive": np.ones(len(g), dtype=bool),
           "cum_pop": np.cumsum(pop_w), "cum_topic": np.cumsum(pop_w[world.by_topic])}
    for t in range(n_steps):
        _step(t, int(active[t]), ctx, rng)
    state.short_term[g] = ctx["short"]
    return _finish(world, uidx, plan, ctx["rec"], day_ms, rng)


def _finish(world: World, uidx: np.ndarray, plan: _Plan, rec: _Record, day_ms: int,
            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Drop the slots past midnight and derive the remaining columns."""
    owner = np.repeat(np.arange(len(uidx)), plan.n_events)
    n = len(owner)
    profile_stay = (rng.exponential(20_000.0, n) + 1_000).astype(np.int64)
    comment_stay = (rng.exponential(15_000.0, n) + 500).astype(np.int64)
    opened_comments = rec.flags["is_comment"] | (rec.flags["is_click"] & (rng.random(n) < 0.04))
    tab = rng.choice(len(TAB_P), size=n, p=TAB_P)
    keep = rec.alive
    cols = {"user_id": world.user_ids[uidx][owner], "video_id": world.video_ids[rec.ints["video"]],
            "time_ms": day_ms + rec.ints["time"], "play_time_ms": rec.ints["play_time_ms"],
            "duration_ms": rec.ints["duration_ms"],
            "profile_stay_time": np.where(rec.flags["is_profile_enter"], profile_stay, 0),
            "comment_stay_time": np.where(opened_comments, comment_stay, 0), "tab": tab,
            **rec.flags, **rec.probs}
    return {k: v[keep] for k, v in cols.items()}
