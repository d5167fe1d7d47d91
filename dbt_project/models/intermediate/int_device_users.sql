{#
  Every (anonymous_id, user_id) pair seen together on an event, bots included: the users a
  device has belonged to. user_change_points (macros/touched_keys.sql) reads a changing
  device's previous owners here instead of scanning the events of the whole history.

  Incremental (delete+insert on the pair): a run upserts the pairs of the events loaded
  after its watermark (`_max_loaded_at`); pairs never disappear (events are never
  deleted), so the result equals a full refresh.
#}
{{
  config(
    materialized='incremental',
    unique_key=['anonymous_id', 'user_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
  )
}}

with

events as (

    select anonymous_id, user_id, _last_loaded_at
    from {{ ref('stg_events') }}
    where user_id is not null
    {% if is_incremental() %}
      and {{ nightjar.new_events_condition('_max_loaded_at') }}
    {% endif %}

)

select
    anonymous_id,
    user_id,
    max(_last_loaded_at) as _max_loaded_at
from events
group by anonymous_id, user_id
