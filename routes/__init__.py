"""HTTP routers: thin layers over the services; crt_api wires them."""
