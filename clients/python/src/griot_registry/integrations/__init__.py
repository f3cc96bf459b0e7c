"""Integrations that report pipeline executions to griot-registry.

Each one is an optional extra of the package, so the base install stays
light:

* ``pip install "griot-registry[airflow]"``: an Airflow plugin that records
  every DAG run with no DAG changes (:mod:`griot_registry.integrations.airflow`).
* ``pip install "griot-registry[dbt]"``: the ``griot-dbt`` command, which
  records dbt invocations and their tests (:mod:`griot_registry.integrations.dbt`).
* ``pip install "griot-registry[prefect]"``: flow hooks for Prefect
  (:mod:`griot_registry.integrations.prefect`).

All of them read the same environment (see :class:`Settings`) and report
through a :class:`Reporter`, which never raises and never makes the user's
pipeline wait long: when the registry is down or slow it logs one warning
and the pipeline goes on.
"""

from ._common import Reporter, Settings, stable_key

__all__ = ["Reporter", "Settings", "stable_key"]
