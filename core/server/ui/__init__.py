"""The read-only web UI: server-rendered pages and one interactive lineage graph.

`headwater server` serves it at `/` beside the API; `headwater ui` serves it alone for the
configured store. Pages read through a `headwater.Client`, the same calls as the API and CLI.
Every asset is in the package (static/, vendored and pinned by scripts/vendor_ui.py).
"""

from headwater.server.ui.routes import add_ui, create_ui_app

__all__ = ["add_ui", "create_ui_app"]
