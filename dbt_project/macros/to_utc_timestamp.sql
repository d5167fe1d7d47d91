{#
  to_utc_timestamp(column) -> TIMESTAMP (without time zone) holding the UTC wall-clock time.

  Accepts TIMESTAMP WITH TIME ZONE (raw.events) or a naive TIMESTAMP that is UTC by
  convention (shop tables). Naive values are taken as UTC (the profile sets TimeZone=UTC).
    duckdb:   timezone('UTC', cast(col as timestamptz))
    spark:    to_utc_timestamp(col, 'UTC')   (Spark timestamps are session-zone instants)
    default:  cast(col as timestamp)
#}
{% macro to_utc_timestamp(column) -%}
    {{ return(adapter.dispatch('to_utc_timestamp', 'nightjar')(column)) }}
{%- endmacro %}

{% macro default__to_utc_timestamp(column) -%}
    cast({{ column }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro duckdb__to_utc_timestamp(column) -%}
    timezone('UTC', cast({{ column }} as timestamptz))
{%- endmacro %}

{% macro spark__to_utc_timestamp(column) -%}
    to_utc_timestamp(cast({{ column }} as timestamp), 'UTC')
{%- endmacro %}
