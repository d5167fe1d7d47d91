{#
  seconds_between(start_ts, end_ts) -> BIGINT: whole seconds from start to end
  (fraction truncated), e.g. session duration.
#}
{% macro seconds_between(start_ts, end_ts) -%}
    cast(floor({{ nightjar.epoch_seconds(end_ts) }} - {{ nightjar.epoch_seconds(start_ts) }}) as {{ dbt.type_bigint() }})
{%- endmacro %}
