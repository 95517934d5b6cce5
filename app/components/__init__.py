"""Layout builders: pure functions from already-read data to Dash components."""
