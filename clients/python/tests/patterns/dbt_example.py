# The dbt integration pattern of the registry's spec (shared/spec/runs-api.rst,
# "dbt Integration"), exactly as written there: it reads REGISTRY_URL,
# GRIOT_RUN_ID and (through the client) GRIOT_API_KEY from the environment.

# dbt post-hook script
import os
from griot_registry import SyncRegistryClient

def on_run_end(results):
    with SyncRegistryClient(os.environ["REGISTRY_URL"]) as client:
        run_id = os.environ.get("GRIOT_RUN_ID")

        if run_id:
            status = "completed" if results.success else "failed"
            client.update_run(
                run_id,
                status=status,
                metadata={
                    "models_run": len(results.results),
                    "models_success": sum(1 for r in results.results if r.status == "success"),
                }
            )
