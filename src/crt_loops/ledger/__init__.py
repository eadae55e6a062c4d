"""The embedded Ledger's internals; ``server`` is the module that serves them."""
