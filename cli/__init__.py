"""The ``crt`` command line's parts; ``crt_cli.main`` is the entry point."""
