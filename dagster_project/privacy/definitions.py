"""Privacy: the step carrying out erasure and suppression requests."""

import dagster as dg

from dagster_project.privacy.assets import suppressed_identities

defs = dg.Definitions(assets=[suppressed_identities])
