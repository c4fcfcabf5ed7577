"""Benchmarks of the exporter against the bundled simulator, side by side with blackbox_exporter."""
