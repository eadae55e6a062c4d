"""The background loop runner, the watermarked passes it runs, and retention."""
