"""ML: customer segments, segment profiles, send-time predictions and customer value."""

import dagster as dg

from dagster_project.ml.assets import customer_segments, send_time_predictions
from dagster_project.ml.value_assets import customer_value

defs = dg.Definitions(assets=[customer_segments, send_time_predictions, customer_value])
