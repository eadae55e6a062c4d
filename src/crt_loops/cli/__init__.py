"""The ``crt`` command line's parts; ``crt_loops.cli.main:main`` is the entry point."""
