{#
  landing_partition_date(file_column) -> DATE of the `dt=YYYY-MM-DD/` folder that starts a
  landing path relative to `<landing>/events` (DESIGN §1.1); null for other layouts.
  substring(x, start, length) is spelled the same on DuckDB, Spark, Trino and Snowflake.
#}
{% macro landing_partition_date(file_column) -%}
    case
        when {{ file_column }} like 'dt=____-__-__/%'
            then cast(substring({{ file_column }}, 4, 10) as date)
    end
{%- endmacro %}
