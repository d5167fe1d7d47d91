{#
  epoch_seconds(ts) -> DOUBLE: seconds since 1970-01-01 00:00:00 UTC of a UTC TIMESTAMP,
  including fractional seconds. Used for exact durations (dbt.datediff counts boundaries).
    duckdb:   epoch(ts)
    spark:    unix_micros(ts) as a double / 1e6 (a decimal literal would make it a DECIMAL
              quotient of 6 decimals, off DuckDB's double by ~1e-12)
    default:  to_unixtime(ts)   (Trino/Presto)
#}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'nightjar')(ts)) }}
{%- endmacro %}

{% macro default__epoch_seconds(ts) -%}
    to_unixtime({{ ts }})
{%- endmacro %}

{% macro duckdb__epoch_seconds(ts) -%}
    epoch(cast({{ ts }} as timestamp))
{%- endmacro %}

{% macro spark__epoch_seconds(ts) -%}
    (cast(unix_micros(cast({{ ts }} as timestamp)) as double) / 1000000)
{%- endmacro %}
