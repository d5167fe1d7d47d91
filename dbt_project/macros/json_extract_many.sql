{#
  Extract many scalars from one JSON column with a single parse (a performance macro).

    json_extract_many(column, paths)          -> an expression holding all `paths` at once
    json_field(fields, column, paths, path)   -> the value of `path` (one of `paths`)

  Select `json_extract_many(...)` as a column (`fields`) in one CTE, then read each value
  with `json_field(fields, ...)` in the next. On DuckDB the first is one
  json_extract_string(col, [paths]) call (the document is parsed once, not once per field:
  ~4x less CPU for stg_events' 22 fields, BENCHMARKS.md "Scale benchmarks"), the second
  indexes that list. Elsewhere the first is a NULL placeholder and the second is the plain
  json_extract_string macro, so the SQL stays portable.
#}
{% macro json_extract_many(column, paths) -%}
    {{ return(adapter.dispatch('json_extract_many', 'nightjar')(column, paths)) }}
{%- endmacro %}

{% macro default__json_extract_many(column, paths) -%}
    cast(null as {{ dbt.type_string() }})
{%- endmacro %}

{% macro duckdb__json_extract_many(column, paths) -%}
    json_extract_string({{ column }}, [{% for p in paths %}'$.{{ p }}'{% if not loop.last %}, {% endif %}{% endfor %}])
{%- endmacro %}

{% macro json_field(fields, column, paths, path) -%}
    {{ return(adapter.dispatch('json_field', 'nightjar')(fields, column, paths, path)) }}
{%- endmacro %}

{% macro default__json_field(fields, column, paths, path) -%}
    {{ nightjar.json_extract_string(column, path) }}
{%- endmacro %}

{% macro duckdb__json_field(fields, column, paths, path) -%}
    {{ fields }}[{{ paths.index(path) + 1 }}]
{%- endmacro %}
