{# Every (anonymous_id, user_id) pair seen together on an event, bots included: a device's
   owners, past and present, so that user_change_points need not scan every event.
   Incremental upsert of the pairs of newly loaded events (README "Incrementality"). #}
{{
  config(
    materialized=nightjar.incremental_materialization(),
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
