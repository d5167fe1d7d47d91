{#
  watermark(column): this model's watermark, the newest value of `column` in its table
  (1900-01-01 when empty). Each incremental model keeps its own, so one that failed or was
  skipped a night catches up the next (README "Incrementality"). Portable SQL.
#}
{% macro watermark(watermark_column='_max_loaded_at') -%}
    (
        select coalesce(max({{ watermark_column }}), cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }}))
        from {{ this }}
    )
{%- endmacro %}
