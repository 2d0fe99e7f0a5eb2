"""Sendwise machine learning: pure, I/O-free functions for customer segments and send times.

Everything here takes and returns in-memory frames/arrays; reading and writing the warehouse and
storing artefacts happen in `dagster_project.ml`.
"""
