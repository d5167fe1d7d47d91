{#
  pii_key() -> VARCHAR: the key of the PII HMAC (NIGHTJAR_PII_KEY, else <data dir>/pii.key;
  nightjar/pii_key.py). There is no default key: without one the query fails and says how
  to create it.
    duckdb:   the session variable set by the profile's plugin (nightjar/dbt_pii_key_plugin.py),
              so the key never appears in compiled SQL or logs. Both branches are cast: an
              untyped error() is NULL-typed and DuckDB folds it away inside hash expressions.
    spark:    from the Spark conf spark.nightjar.pii_key_hex that the profile sets from
              NIGHTJAR_PII_KEY (hex, so quoting cannot alter the key). The SQL holds only the placeholder
              ${spark.nightjar.pii_key_hex}, which Spark substitutes when it parses the
              statement: dbt's compiled SQL, target/ and logs never see the key. The name avoids
              "secret": Spark redacts such confs in the substitution as well, so the HMAC
              would be keyed with "*********(redacted)". No env_var() here: dbt would store the
              value in target/partial_parse.msgpack. Without NIGHTJAR_PII_KEY (a profile
              cannot read the key file) the conf is empty and the query fails with how to
              set it.
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

{% macro spark__pii_key() -%}
    {%- set conf = '${spark.nightjar.pii_key_hex}' -%}
    {%- set help = "No PII key: set NIGHTJAR_PII_KEY (the Spark profile reads only the environment: export the content of <data dir>/pii.key, which `nightjar pii-key` creates at random); the profile passes it to Spark as spark.nightjar.pii_key_hex" -%}
    (case when '{{ conf }}' in ('', '$' || '{spark.nightjar.pii_key_hex}')
          then cast(raise_error('{{ help }}') as string)
          else decode(unhex('{{ conf }}'), 'UTF-8') end)
{%- endmacro %}
