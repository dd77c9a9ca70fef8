"""The registry stage: MLflow tracking and the promotion gate (docs/design.md §7).

``store`` resolves where runs go, checks the store answers and holds the registry lock; ``runs`` logs one run;
``versions`` turns a logged model into a registered version and finds, tags and loads versions; ``aliases``
reads and moves ``@champion``/``@previous_champion``/``@challenger`` (with ``promote`` and ``rollback``);
``decision`` is the gate's pure per-task verdict and ``gate`` scores, decides, records and moves. Only this
stage imports mlflow (``decision`` does not); no other stage talks to MLflow directly.
"""
