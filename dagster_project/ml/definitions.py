"""ML: customer segments, segment profiles and send-time predictions."""

import dagster as dg

from dagster_project.ml.assets import customer_segments, send_time_predictions

defs = dg.Definitions(assets=[customer_segments, send_time_predictions])
