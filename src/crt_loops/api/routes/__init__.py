"""HTTP routers: thin layers over the services; ``crt_loops.api.app`` wires them."""
