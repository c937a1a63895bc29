"""The plugin Airflow finds through the `airflow.plugins` entry point: no DAG changes needed."""

from airflow.plugins_manager import AirflowPlugin

from headwater.adapters.airflow import listener
from headwater.adapters.airflow.settings import disabled_at_start


class HeadwaterPlugin(AirflowPlugin):
    name = "headwater"
    # HEADWATER_DISABLED=1 (or [headwater] disabled) when Airflow starts: register nothing at all.
    listeners = [] if disabled_at_start() else [listener]
    hook_lineage_readers = [] if disabled_at_start() else [listener.HeadwaterLineageReader]
