"""The training stage: sample partitions in, a trained and evaluated model out (docs/design.md §5, §6).

Streaming samples into batches (``loader``), the trainer (``train``, its step machinery in ``train_loop`` and
its checkpoints in ``checkpoint``), what a training run logs to MLflow (``train_tracking``, through the
registry stage), the evaluator that scores a model and its baselines on one window (``evaluate``), its plots
(``plots``) and the hyper-parameter search (``tune``).
"""
