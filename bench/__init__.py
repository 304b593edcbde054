"""Benchmarks: the madoguchi engine against SpiffWorkflow and a bare-SQLite floor."""
