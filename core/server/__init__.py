"""The headwater tracking server: one REST API over the SQL store, for teams.

Run it with `headwater server` (the `server` extra). `create_app()` in headwater.server.app
builds the FastAPI application from the environment, so every uvicorn worker builds the same one.
Nothing in the core imports this package: FastAPI is needed only where the server runs.
"""
