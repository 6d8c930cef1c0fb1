"""Helpers shared by test suites and benchmarks (real servers on loopback, never the internet)."""
