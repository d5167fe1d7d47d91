{#
  sha256_hex(expr) -> VARCHAR: lower-case hex SHA-256 of a string (used to pseudonymise
  e-mail addresses in staging; raw PII never leaves staging).
    duckdb:   sha256(expr)
    spark:    sha2(expr, 256)
    trino:    lower(to_hex(sha256(to_utf8(expr))))
    default:  sha2(expr, 256)   (Snowflake, Databricks, MySQL)
#}
{% macro sha256_hex(expr) -%}
    {{ return(adapter.dispatch('sha256_hex', 'nightjar')(expr)) }}
{%- endmacro %}

{% macro default__sha256_hex(expr) -%}
    sha2({{ expr }}, 256)
{%- endmacro %}

{% macro duckdb__sha256_hex(expr) -%}
    sha256({{ expr }})
{%- endmacro %}

{% macro trino__sha256_hex(expr) -%}
    lower(to_hex(sha256(to_utf8({{ expr }}))))
{%- endmacro %}
