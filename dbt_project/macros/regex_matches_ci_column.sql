{#
  regex_matches_ci_column(column, pattern_column) -> BOOLEAN

  Like regex_matches_ci, but the pattern is an expression (a column of the channel_rules
  seed) rather than a literal: true when the pattern occurs anywhere in `column`, ignoring
  case; null when either is null.
    duckdb:   regexp_matches(col, pattern, 'i')
    spark:    col rlike concat('(?i)', pattern)
    default:  regexp_like(col, concat('(?i)', pattern))   (Trino/Presto, Snowflake)
#}
{% macro regex_matches_ci_column(column, pattern_column) -%}
    {{ return(adapter.dispatch('regex_matches_ci_column', 'nightjar')(column, pattern_column)) }}
{%- endmacro %}

{% macro default__regex_matches_ci_column(column, pattern_column) -%}
    regexp_like({{ column }}, {{ dbt.concat(["'(?i)'", pattern_column]) }})
{%- endmacro %}

{% macro duckdb__regex_matches_ci_column(column, pattern_column) -%}
    regexp_matches({{ column }}, {{ pattern_column }}, 'i')
{%- endmacro %}

{% macro spark__regex_matches_ci_column(column, pattern_column) -%}
    ({{ column }} rlike {{ dbt.concat(["'(?i)'", pattern_column]) }})
{%- endmacro %}
