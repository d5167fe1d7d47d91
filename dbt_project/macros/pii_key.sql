{#
  pii_key() -> VARCHAR: the key of the PII HMAC (NIGHTJAR_PII_KEY, else <data dir>/pii.key;
  nightjar/pii_key.py). There is no default key: without one the query fails and says how
  to create it.
    duckdb:   the session variable set by the profile's plugin (nightjar/dbt_pii_key_plugin.py),
              so the key never appears in compiled SQL or logs. Both branches are cast: an
              untyped error() is NULL-typed and DuckDB folds it away inside hash expressions.
    others:   not supported yet (compile error).
#}
{% macro pii_key() -%}
    {{ return(adapter.dispatch('pii_key', 'nightjar')()) }}
{%- endmacro %}

{% macro default__pii_key() -%}
    {{ exceptions.raise_compiler_error("pii_key: no way to pass the PII key to the " ~ target.type ~ " adapter yet") }}
{%- endmacro %}

{% macro duckdb__pii_key() -%}
    {%- set key_file = env_var('NIGHTJAR_DATA_DIR', '../data') ~ '/pii.key' -%}
    coalesce(
        cast(getvariable('nightjar_pii_key') as varchar),
        cast(error('No PII key: set NIGHTJAR_PII_KEY, or create the key file ' || '{{ key_file | replace("'", "''") }}' || ' (`nightjar pii-key` creates a random one; `nightjar run` does so on its first night); the dbt profile must load the plugin nightjar.dbt_pii_key_plugin') as varchar)
    )
{%- endmacro %}
