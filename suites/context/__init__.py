"""Run conditions (steal, CPU ready/delay, swap, host load) captured beside the benchmarks."""
