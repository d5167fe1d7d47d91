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

{#
  utc_to_timestamptz(expr) -> TIMESTAMP WITH TIME ZONE: the inverse of to_utc_timestamp, for
  a naive TIMESTAMP that holds UTC wall-clock time. Used to compare a stored TIMESTAMPTZ
  column with a UTC watermark *without* a function on the column, so the database can use
  the column's min/max statistics (DuckDB skips whole row groups of older loads).
    duckdb:    timezone('UTC', cast(expr as timestamp))
    postgres:  cast(expr as timestamp) at time zone 'UTC'
    default:   cast(expr as timestamp)   (engines with one timestamp type)
#}
{% macro utc_to_timestamptz(expr) -%}
    {{ return(adapter.dispatch('utc_to_timestamptz', 'nightjar')(expr)) }}
{%- endmacro %}

{% macro default__utc_to_timestamptz(expr) -%}
    cast({{ expr }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro duckdb__utc_to_timestamptz(expr) -%}
    timezone('UTC', cast({{ expr }} as timestamp))
{%- endmacro %}

{% macro postgres__utc_to_timestamptz(expr) -%}
    (cast({{ expr }} as timestamp) at time zone 'UTC')
{%- endmacro %}
