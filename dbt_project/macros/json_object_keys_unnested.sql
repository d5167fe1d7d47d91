{#
  json_object_keys_unnested(column) -> one row per top-level key of the JSON object text
  in `column` (a set-returning expression for a SELECT list; rows whose value is null or
  not an object yield no key).
    duckdb:   unnest(json_keys(col))
    spark:    explode(json_object_keys(col))
    default:  not available as a select-list function on every engine: a compile error
              that names this macro, so a new adapter gets a clear message.
#}
{% macro json_object_keys_unnested(column) -%}
    {{ return(adapter.dispatch('json_object_keys_unnested', 'nightjar')(column)) }}
{%- endmacro %}

{% macro default__json_object_keys_unnested(column) -%}
    {{ exceptions.raise_compiler_error("json_object_keys_unnested has no implementation for adapter '" ~ adapter.type() ~ "': add " ~ adapter.type() ~ "__json_object_keys_unnested in dbt_project/macros/json_object_keys_unnested.sql") }}
{%- endmacro %}

{% macro duckdb__json_object_keys_unnested(column) -%}
    unnest(json_keys({{ column }}))
{%- endmacro %}

{% macro spark__json_object_keys_unnested(column) -%}
    explode(json_object_keys({{ column }}))
{%- endmacro %}
