"""Test support: fake Ollama, service processes, heartbeat environments and scripts."""
