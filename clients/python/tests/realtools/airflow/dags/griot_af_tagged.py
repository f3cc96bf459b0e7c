"""A one-task DAG whose contract comes from a ``griot:contract=`` tag."""

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task


@dag(
    dag_id="griot_af_tagged",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "griot:contract=contract-from-tag"],
)
def griot_af_tagged():
    @task
    def only():
        return "done"

    only()


griot_af_tagged()
