"""The dbt project (dbt/) as Dagster assets: manifest preparation, translator, assets, docs command."""
