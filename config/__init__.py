"""Settings and policy: what a company configures. Imports nothing of ours."""
