# The Prefect integration pattern of the registry's spec (shared/spec/runs-api.rst,
# "Prefect Integration"), as printed there except that the URL
# "http://registry:8000" is the name REGISTRY_URL. It passes no api_key: the
# client takes it from GRIOT_API_KEY.
#
# It runs under real Prefect (tests/realtools/prefect_flows/driver.py loads this
# file in the Prefect venv and points REGISTRY_URL at the test registry);
# tests/test_integration_patterns.py checks what it recorded.
REGISTRY_URL = "http://registry:8000"

from prefect import flow, task
from griot_registry import SyncRegistryClient

@task
def create_griot_run(contract_id: str, flow_run_name: str) -> str:
    with SyncRegistryClient(REGISTRY_URL) as client:
        run = client.create_run(
            contract_id=contract_id,
            pipeline_name=flow_run_name,
            status="running"
        )
        return run["id"]

@flow
def data_pipeline(contract_id: str):
    run_id = create_griot_run(contract_id, "data_pipeline")

    try:
        # ... your pipeline tasks ...
        pass
    except Exception as e:
        with SyncRegistryClient(REGISTRY_URL) as client:
            client.update_run(run_id, status="failed")
        raise
    else:
        with SyncRegistryClient(REGISTRY_URL) as client:
            client.update_run(run_id, status="completed")
