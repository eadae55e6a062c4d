"""Building blocks with no project dependencies: the clock, metrics, a loopback server thread."""
