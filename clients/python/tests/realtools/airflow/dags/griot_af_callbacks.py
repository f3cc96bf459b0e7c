"""A DAG that opts in with griot-registry's callbacks instead of relying on
the plugin's listener (the test turns the listener off for it). Its second
task fails."""

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task

from griot_registry.integrations.airflow import dag_callbacks, task_callbacks


@dag(
    dag_id="griot_af_callbacks",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={**task_callbacks(contract_id="contract-from-callbacks")},
    **dag_callbacks(contract_id="contract-from-callbacks"),
)
def griot_af_callbacks():
    @task
    def works():
        return 1

    @task
    def fails(_value):
        raise ValueError("opted-in DAG fails on purpose")

    fails(works())


griot_af_callbacks()
