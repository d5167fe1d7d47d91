{#
  regex_matches_ci(column, pattern) -> BOOLEAN

  Case-insensitive regular-expression search (true when `pattern` occurs anywhere in
  `column`; null when `column` is null). `pattern` is a plain string (no quotes).
    duckdb:   regexp_matches(col, 'pattern', 'i')
    spark:    col rlike '(?i)pattern'
    default:  regexp_like(col, '(?i)pattern')   (Trino/Presto, Snowflake)
#}
{% macro regex_matches_ci(column, pattern) -%}
    {{ return(adapter.dispatch('regex_matches_ci', 'nightjar')(column, pattern)) }}
{%- endmacro %}

{% macro default__regex_matches_ci(column, pattern) -%}
    regexp_like({{ column }}, '(?i){{ pattern | replace("'", "''") }}')
{%- endmacro %}

{% macro duckdb__regex_matches_ci(column, pattern) -%}
    regexp_matches({{ column }}, '{{ pattern | replace("'", "''") }}', 'i')
{%- endmacro %}

{% macro spark__regex_matches_ci(column, pattern) -%}
    ({{ column }} rlike '(?i){{ pattern | replace("'", "''") }}')
{%- endmacro %}
