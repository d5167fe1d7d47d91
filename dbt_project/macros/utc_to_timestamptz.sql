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
