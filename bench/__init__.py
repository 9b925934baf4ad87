"""Benchmarks: evalserve side by side with its references, printing ratios. Not timed tests."""
