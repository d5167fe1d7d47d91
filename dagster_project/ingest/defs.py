import dagster as dg

from dagster_project.ingest.assets import landing_events, shop_db

defs = dg.Definitions(assets=[landing_events, shop_db])
