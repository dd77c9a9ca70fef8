"""Raw ids -> embedding table rows, the one mapping training, evaluation and a later scoring share (docs/design.md §4.3).

A table is either a **vocabulary** table (``num_buckets`` in the config): row 0 is reserved, known raw ids have
their own row ``1..num_buckets-1`` and every other id (unseen, or past a full vocabulary) reads row 0; or a
**hashed** table (``hash_bucket_size``): row = ``stable_hash(id) mod size``, collisions accepted. No id is ever
wrapped into a table by a plain modulo.

``IdRows`` holds the vocabularies of one model (sorted raw ids and their rows, plain numpy arrays) and is
carried by the model (``DlrmHSTU.id_rows``, pickled with it), so a version scored months later maps ids as it
was trained. The vocabularies themselves are built from the data by ``components/data/id_vocab.py``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hstu_model.config import ModelConfig

RESERVED_ROW = 0  # unseen ids and ids that found the vocabulary full

# splitmix64's finalizer: a fixed bijection of 64-bit words that spreads consecutive ids over all buckets.
# Python's hash() is salted per process for str and is the identity for small ints, so it is neither.
_GOLDEN, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def stable_hash(ids: np.ndarray, size: int) -> np.ndarray:
    """Rows of ``ids`` (int64 ``[N]``) in a hashed table of ``size`` rows; the same in every process and version.

    Returns: int64 ``[N]`` in ``[0, size)``.
    """
    z = np.asarray(ids, np.int64).astype(np.uint64) + _GOLDEN  # uint64 arithmetic wraps, as the mix intends
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(size)).astype(np.int64)


class IdRows:
    """The raw id -> row mapping of every id feature of a model.

    Args:
        config: the model config (feature -> table, table sizes, which tables are hashed).
        vocabularies: vocabulary table name -> (raw ids int64 [N], rows int64 [N] in ``[1, num_embeddings)``).
            A vocabulary table missing here has no known id (every id reads row 0). ``None``: the ids in the
            samples already are rows of the vocabulary tables (hand-made batches); they are range-checked.
    Raises:
        ValueError: a vocabulary row outside its table, a table listed twice for one id, or an unknown table.
    """

    def __init__(self, config: ModelConfig, vocabularies: Mapping[str, tuple[np.ndarray, np.ndarray]] | None):
        self.tables = {t.name: t for t in config.embedding_tables}
        self.table_of = {f: t.name for t in config.embedding_tables for f in t.feature_names}
        self.identity = vocabularies is None
        self.vocab: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, (ids, rows) in (vocabularies or {}).items():
            table = self.tables.get(name)
            if table is None or table.hashed:
                raise ValueError(f"vocabulary for {name!r}, which is no vocabulary table of the model "
                                 f"(vocabulary tables: {sorted(n for n, t in self.tables.items() if not t.hashed)})")
            ids, rows = np.asarray(ids, np.int64), np.asarray(rows, np.int64)
            if len(rows) and (rows.min() <= RESERVED_ROW or rows.max() >= table.num_embeddings):
                raise ValueError(f"vocabulary of table {name!r} uses rows {rows.min()}..{rows.max()}, outside "
                                 f"[1, {table.num_embeddings}): the table is smaller than the vocabulary it was given")
            order = np.argsort(ids, kind="stable")
            ids, rows = ids[order], rows[order]
            if len(ids) > 1 and (ids[1:] == ids[:-1]).any():
                raise ValueError(f"vocabulary of table {name!r} lists raw id {ids[1:][ids[1:] == ids[:-1]][0]} twice")
            self.vocab[name] = (ids, rows)

    def sizes(self) -> dict[str, int]:
        """Known ids per vocabulary table (hashed tables are left out)."""
        return {n: len(self.vocab.get(n, ((), ()))[0]) for n, t in self.tables.items() if not t.hashed}

    def rows(self, feature: str, ids: np.ndarray) -> np.ndarray:
        """Rows of the raw ``ids`` (int64 ``[N]``) of ``feature``: int64 ``[N]`` in ``[0, num_embeddings)``.

        Raises:
            ValueError: ``feature`` has no table, or (``identity``) an id is outside its vocabulary table.
        """
        name = self.table_of.get(feature)
        if name is None:
            raise ValueError(f"feature {feature!r} is in no embedding table of the model config")
        table, ids = self.tables[name], np.asarray(ids, np.int64)
        if table.hashed:
            return stable_hash(ids, table.num_embeddings)
        if self.identity:
            bad = np.flatnonzero((ids < 0) | (ids >= table.num_embeddings))
            if bad.size:
                raise ValueError(f"feature {feature!r}: id {ids[bad[0]]} is no row of table {name!r} "
                                 f"({table.num_embeddings} rows); map raw ids with a vocabulary (IdRows) first")
            return ids.copy()
        known, rows = self.vocab.get(name, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        at = np.minimum(np.searchsorted(known, ids), max(len(known) - 1, 0))
        hit = (known[at] == ids) if len(known) else np.zeros(len(ids), bool)
        return np.where(hit, rows[at] if len(known) else RESERVED_ROW, RESERVED_ROW).astype(np.int64)
