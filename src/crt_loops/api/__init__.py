"""The HTTP API: ``create_app`` in ``app``, the routers in ``routes``."""
