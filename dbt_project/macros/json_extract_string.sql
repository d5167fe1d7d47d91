{#
  json_extract_string(column, path) -> VARCHAR (or null)

  Extract a scalar from a JSON object stored as text/JSON. `path` is a dotted path
  without the leading `$.`, e.g. 'page.path'. Missing keys give null.
    duckdb:   json_extract_string(col, '$.page.path')
    spark:    get_json_object(col, '$.page.path')
    default:  json_extract_scalar(col, '$.page.path')   (Trino/Presto, BigQuery)
#}
{% macro json_extract_string(column, path) -%}
    {{ return(adapter.dispatch('json_extract_string', 'nightjar')(column, path)) }}
{%- endmacro %}

{% macro default__json_extract_string(column, path) -%}
    json_extract_scalar({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro duckdb__json_extract_string(column, path) -%}
    json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro spark__json_extract_string(column, path) -%}
    get_json_object({{ column }}, '$.{{ path }}')
{%- endmacro %}
