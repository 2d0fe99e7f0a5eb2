"""Fixtures of the dbt tests; the helpers they use live in dbt_support.py.

Helpers are imported from a uniquely named module, never `from conftest import ...`: every test folder
has a conftest, and whichever was imported first would answer.
"""

from dbt_support import dbt_target, hand_world_url  # noqa: F401 (fixtures, registered by import)
