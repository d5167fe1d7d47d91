{#
  type_double(): 64-bit floating point type. dbt.type_float() renders `float`, which is
  4-byte REAL on DuckDB, so money and rates use this instead.
#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'nightjar')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double precision{%- endmacro %}
{% macro duckdb__type_double() -%}double{%- endmacro %}
{% macro spark__type_double() -%}double{%- endmacro %}
{% macro trino__type_double() -%}double{%- endmacro %}
{% macro snowflake__type_double() -%}float{%- endmacro %}
{% macro bigquery__type_double() -%}float64{%- endmacro %}
