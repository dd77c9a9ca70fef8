"""The baseline stage: five static models scored on the same samples the model sees (docs/design.md §5).

``features`` turns sample windows into one pandas row per candidate, ``models`` holds the five baselines and
``suite`` fits them all on the training windows, scores the eval window and caches the per-task AUCs that the
evaluator reports beside the model's (``components.baselines.suite.run_baselines``).
"""
