"""A DAG whose task fails on both of its tries. Nothing here names
griot-registry or a contract: the run falls back to the dag_id."""

from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task


@dag(
    dag_id="griot_af_failing",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
)
def griot_af_failing():
    @task
    def prepare():
        return "ready"

    @task(retries=1, retry_delay=timedelta(seconds=0))
    def explode(_ready):
        raise RuntimeError("this task always fails")

    explode(prepare())


griot_af_failing()
