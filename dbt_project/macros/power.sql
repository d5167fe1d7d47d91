{#
  power(base, exponent) -> DOUBLE

  base raised to exponent (time-decay attribution weights, 2 ^ (-age / half-life)).
  `power` is the function's name on DuckDB, Spark, Trino, Snowflake, BigQuery, Redshift and
  PostgreSQL, so only the default exists; an engine that spells it otherwise adds its
  `<adapter>__power` here.
#}
{% macro power(base, exponent) -%}
    {{ return(adapter.dispatch('power', 'nightjar')(base, exponent)) }}
{%- endmacro %}

{% macro default__power(base, exponent) -%}
    power(cast({{ base }} as {{ nightjar.type_double() }}), cast({{ exponent }} as {{ nightjar.type_double() }}))
{%- endmacro %}
