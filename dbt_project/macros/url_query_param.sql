{#
  url_query_param(url, name) -> VARCHAR: the (still URL-encoded) value of query parameter
  `name` of `url`, null when absent or empty. Used to read utm_* from the page URL before
  the query string is stripped.
    default:  regexp_extract(url, pattern, 1)  (DuckDB, Spark, Databricks, Trino)
    snowflake: regexp_substr(url, pattern, 1, 1, 'e', 1)
#}
{% macro url_query_param(url, name) -%}
    {{ return(adapter.dispatch('url_query_param', 'nightjar')(url, name)) }}
{%- endmacro %}

{% macro default__url_query_param(url, name) -%}
    nullif(regexp_extract({{ url }}, '[?&]{{ name }}=([^&#]*)', 1), '')
{%- endmacro %}

{% macro snowflake__url_query_param(url, name) -%}
    nullif(regexp_substr({{ url }}, '[?&]{{ name }}=([^&#]*)', 1, 1, 'e', 1), '')
{%- endmacro %}
