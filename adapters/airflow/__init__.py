"""Airflow 3 plugin: installing headwater[airflow] records every task's inputs and outputs."""
