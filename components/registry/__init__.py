"""The registry stage: MLflow tracking and the promotion gate (docs/design.md §7).

``tracking`` resolves where runs go, logs runs and turns a trained model into a registered version;
``gate`` decides on per-task AUC whether a version replaces ``@champion`` and records the decision and the
alias moves. These two modules are the only MLflow importers; no other stage talks to MLflow directly.
"""
