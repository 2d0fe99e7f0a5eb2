"""The synthetic source world: a deterministic, messy shop + CRM + website + ESP with known ground truth.

`sendwise generate` writes it (see `world.generate`); the pipeline reads it like any real source and
never reads `ground_truth/`, which only the evaluations and tests use.
"""
