{#
  incremental_materialization() -> the `materialized` config of the incremental models.
    duckdb:   incremental (their own strategies: delete+insert, replace_changed_users).
    spark:    table. Plain parquet has no row-level DELETE (it needs Delta/Iceberg, whose jars
              cannot be installed here), and those strategies delete changed users' or
              events' rows anywhere in history, not whole date partitions. A full rebuild
              makes "incremental == full refresh" hold by construction.
#}
{% macro incremental_materialization() -%}
    {{ return(adapter.dispatch('incremental_materialization', 'nightjar')()) }}
{%- endmacro %}

{% macro default__incremental_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__incremental_materialization() -%}
    {{ return('table') }}
{%- endmacro %}
