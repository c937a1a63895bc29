"""Prefect 3 integration: the HeadwaterTracker block and its flow/task hooks."""
