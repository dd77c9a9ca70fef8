"""The orchestration layer: what runs the stages, and the only one that may call all of them.

``daily`` holds the daily run's steps as the ``hstu_daily`` DAG calls them, ``cli`` the ``hstu`` command (one
subcommand per step), ``demo`` the end-to-end ``make demo`` run and ``localstack`` the embedded Airflow and
MLflow services of ``make up`` / ``make down``. Nothing in ``components`` imports it except itself; the DAG
and the tests do.
"""
