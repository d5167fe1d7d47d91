{#
  new_events_condition(column): a WHERE condition on stg_events columns: the rows loaded
  after this model's watermark, plus, in a backfill, the events whose timestamp is in the
  window (macros/backfill.sql).
#}
{% macro new_events_condition(watermark_column='_max_loaded_at') %}
    (
        _last_loaded_at > {{ nightjar.watermark(watermark_column) }}
        {% if nightjar.is_backfill() %}
        -- backfill: also every event whose timestamp is in the window (macros/backfill.sql)
        or {{ nightjar.in_backfill_window('event_timestamp') }}
        {% endif %}
    )
{% endmacro %}
