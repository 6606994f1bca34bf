"""Real simulators with explicit generalization splits."""
