"""The pipeline steps as plain Python functions, each with a CLI (``hstu <step>``), usable without Airflow.

Steps: data sources and the built-in generator, the Spark sample builder, the trainer, the evaluator,
MLflow tracking and the promotion gate. The config is parsed once by ``components.config.load_config``.
"""

__all__: list[str] = []
