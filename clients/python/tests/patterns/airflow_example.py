# The Airflow integration pattern of the registry's spec (shared/spec/runs-api.rst,
# "Airflow DAG Integration"), as written there except that the URL
# "http://registry:8000" is the name REGISTRY_URL. The spec's closing
# `with DAG(...)` block is Airflow's own wiring and is left out: the test calls
# the tasks the way Airflow would, with a task context.
#
# `airflow` is not installed: the test puts stand-ins for `airflow.DAG` and
# `airflow.decorators.task` in sys.modules before loading this file, and sets
# REGISTRY_URL and API_KEY (names the spec takes from its surroundings).
REGISTRY_URL = "http://registry:8000"
API_KEY = None

from airflow import DAG
from airflow.decorators import task
from griot_registry import SyncRegistryClient
from datetime import datetime

@task
def start_run(contract_id: str, **context) -> str:
    with SyncRegistryClient(REGISTRY_URL, api_key=API_KEY) as client:
        run = client.create_run(
            contract_id=contract_id,
            pipeline_name=context['dag'].dag_id,
            pipeline_id=context['run_id'],
            status="running",
            metadata={
                "execution_date": str(context['execution_date']),
                "try_number": context['ti'].try_number,
            }
        )
        return run["id"]

@task
def complete_run(run_id: str, status: str = "completed"):
    with SyncRegistryClient(REGISTRY_URL, api_key=API_KEY) as client:
        client.update_run(run_id, status=status)
