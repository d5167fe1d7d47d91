{#
  The backfill window (README "Backfill window"), set by the partitioned Dagster dbt asset
  or by hand:
    dbt build --vars '{"backfill_start": "2025-01-01 00:00:00", "backfill_end": "2025-02-01 00:00:00"}'
  is_backfill(): both vars set (one alone is an error); in_backfill_window(ts_expr): a
  condition on a UTC timestamp, half-open [start, end).
#}

{% macro is_backfill() %}
    {%- set start = var('backfill_start', '') -%}
    {%- set end = var('backfill_end', '') -%}
    {%- if (start and not end) or (end and not start) -%}
        {{ exceptions.raise_compiler_error("backfill_start and backfill_end must be set together (got start=" ~ start ~ ", end=" ~ end ~ ")") }}
    {%- endif -%}
    {{ return(start != '' and start is not none and end != '' and end is not none) }}
{% endmacro %}


{% macro _backfill_bound(name) %}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$', value) -%}
        {{ exceptions.raise_compiler_error(name ~ " must be 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM[:SS]' (UTC), got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ return("cast('" ~ value.replace('T', ' ') ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
{% endmacro %}


{# A boolean SQL expression: `ts_expr` (a UTC timestamp) lies in the backfill window. #}
{% macro in_backfill_window(ts_expr) %}
    ({{ ts_expr }} >= {{ nightjar._backfill_bound('backfill_start') }} and {{ ts_expr }} < {{ nightjar._backfill_bound('backfill_end') }})
{%- endmacro %}
