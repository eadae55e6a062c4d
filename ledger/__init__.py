"""The embedded Ledger's internals; ``ledger_server`` is the entry module that serves them."""
