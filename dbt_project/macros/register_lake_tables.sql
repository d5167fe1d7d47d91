{#
  register_lake_tables(): the project's on-run-start hook. On Spark, (re)registers every
  table of the `raw` source as an external parquet table over the lake that dlt's
  filesystem destination writes (DESIGN §6): `raw.<table>` at
  `<NIGHTJAR_LAKE_URL>/raw/<table>` (default `<NIGHTJAR_DATA_DIR>/lake`).
  Dropped and created again on every run rather than refreshed: an external table only
  loses its catalog entry, and the new entry infers the schema afresh, so a column that a
  later load added is seen. `mergeSchema` unions the columns of all files (older loads
  lack the newer columns). No-op on DuckDB, whose raw schema dlt writes directly.
#}
{% macro register_lake_tables() %}
    {{ return(adapter.dispatch('register_lake_tables', 'nightjar')()) }}
{% endmacro %}

{% macro default__register_lake_tables() %}
{% endmacro %}

{% macro spark__register_lake_tables() %}
    {%- if execute -%}
        {%- set lake = env_var('NIGHTJAR_LAKE_URL', env_var('NIGHTJAR_DATA_DIR', '../data') ~ '/lake') | trim -%}
        {%- set lake = lake.rstrip('/') -%}
        {%- set tables = [] -%}
        {%- for source in graph.sources.values() if source.source_name == 'raw' -%}
            {%- do tables.append(source) -%}
        {%- endfor -%}
        {%- do run_query('create schema if not exists ' ~ tables[0].schema) -%}
        {%- for source in tables | sort(attribute='identifier') -%}
            {%- set location = lake ~ '/raw/' ~ source.identifier -%}
            {%- do run_query('drop table if exists ' ~ source.schema ~ '.' ~ source.identifier) -%}
            {%- do run_query(
                'create table ' ~ source.schema ~ '.' ~ source.identifier
                ~ " using parquet options (mergeSchema 'true') location '" ~ location | replace("'", "\\'") ~ "'"
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}
