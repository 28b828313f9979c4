"""Measuring code behind ``segzero bench`` (SAM2 backends, reasoner generation paths); the scripts in the
repository's ``bench/`` run these and the node-level benchmarks."""
