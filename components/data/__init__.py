"""The data stage: raw behaviour logs in, sample partitions out (docs/design.md §4).

Reading the raw days (``sources``), flagging and quarantining bad rows (``quality``), the per-user history
state (``history``), stable integer ids (``vocab``), the Spark session (``spark``), the run's time windows
(``windows``) and the Spark sample builder itself (``samples``, with its statistics in ``sample_stats`` and a
pandas twin in ``samples_ref``). It imports no other stage of ``components``.
"""
