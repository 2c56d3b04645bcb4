"""Benchmarks: each module prints its figures and the command that produced them."""
