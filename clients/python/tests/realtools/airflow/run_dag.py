"""Run one DAG run of a DAG with ``DAG.test()``, as ``airflow dags test``
does, but for a fixed logical date, so that calling this script twice runs
the *same* DAG run (same run id) twice.

Usage: python run_dag.py DAG_ID LOGICAL_DATE   (dates like 2024-01-01)

Airflow 3 names a ``DAG.test()`` run after its ``run_after`` (the CLI
leaves it at "now"), so it is set to the logical date here; Airflow 2 names
the run after the logical (execution) date. Exits 0 when the DAG run
succeeded, 1 when it failed. Contains no griot-registry code: the plugin,
installed in this venv, does the reporting.
"""

import sys
from datetime import datetime, timezone

from airflow import __version__ as airflow_version
from airflow.configuration import conf

try:  # Airflow 3
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag


def main() -> int:
    dag_id, day = sys.argv[1], sys.argv[2]
    logical_date = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    bag = DagBag(dag_folder=conf.get("core", "dags_folder"))
    dag = bag.dags[dag_id]
    if airflow_version.startswith("2."):
        # Replacing the earlier DAG run deletes its row, and its note's
        # foreign key names the FAB user table, which only the CLI's
        # start-up would otherwise have loaded.
        import airflow.providers.fab.auth_manager.models  # noqa: F401

        dag_run = dag.test(execution_date=logical_date)
    else:
        dag_run = dag.test(logical_date=logical_date, run_after=logical_date)
    state = getattr(dag_run.state, "value", dag_run.state)
    print(f"griot-test: dag_run {dag_run.run_id} ended {state}", flush=True)
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
