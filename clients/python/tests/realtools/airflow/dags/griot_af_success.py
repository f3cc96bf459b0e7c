"""A DAG that succeeds. It knows nothing of griot-registry: the plugin
records it. Its contract comes from the ``griot_contract_id`` param. The
second task takes a few seconds, long enough for a heartbeat or two when the
test sets GRIOT_HEARTBEAT_SECONDS low."""

import time
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task


@dag(
    dag_id="griot_af_success",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params={"griot_contract_id": "contract-from-param"},
)
def griot_af_success():
    @task
    def extract():
        return [1, 2, 3]

    @task
    def load(rows):
        time.sleep(5)
        return sum(rows)

    load(extract())


griot_af_success()
