{#
  user_change_points: (user_key, changed_from) for every user_key whose non-bot events may
  differ from what this model saw at its watermark W. The model keeps its rows from before
  `changed_from` and recomputes the rest, which equals recomputing the whole user:
    * a new, late or re-delivered event (loaded after W) changes its user_key's history
      from its timestamp on;
    * an anonymous_id whose owner may have changed (int_identity_map._mapped_loaded_at > W)
      moved its anonymous events from the old owner — one of the user_ids seen on it, or
      the anonymous_id itself — to the new one: all of them change from the first of
      those events;
    * in a backfill, the users with events in the window change from the beginning.
  int_identity_map (upstream) already holds the new mapping.
  The calling model declares `-- depends_on:` int_identity_map and int_device_users: refs
  inside its incremental branch are not seen when dbt parses.
#}
{% macro user_change_points(watermark_column='_max_loaded_at') %}
    select user_key, min(changed_from) as changed_from
    from (

        select user_key, event_timestamp as changed_from
        from {{ ref('int_events_stitched') }}
        where not is_bot
          and _last_loaded_at > {{ nightjar.watermark(watermark_column) }}

        union all

        {{ nightjar.moved_device_owners(watermark_column) }}

        {% if nightjar.is_backfill() %}
        union all

        -- backfill (macros/backfill.sql): the users with events in the window, whole history
        select user_key, cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }}) as changed_from
        from {{ ref('int_events_stitched') }}
        where {{ nightjar.in_backfill_window('event_timestamp') }}
        {% endif %}

    ) as changes
    group by user_key
{% endmacro %}


{#
  moved_device_owners(column): (user_key, changed_from) for the devices whose owner may have
  changed since this model's watermark (int_identity_map._mapped_loaded_at newer): the new
  owner, every user_id seen on the device and the device itself, from the device's first
  anonymous event. Also used by fct_attribution, which learns of changed sessions from
  fct_sessions but cannot see the events a device took away from its old owner there.
#}
{% macro moved_device_owners(watermark_column='_max_loaded_at') %}
{%- set remapped_anonymous_ids -%}
    select anonymous_id
    from {{ ref('int_identity_map') }}
    where _mapped_loaded_at > {{ nightjar.watermark(watermark_column) }}
{%- endset -%}
select owners.user_key, moved.first_event_at as changed_from
from (
    -- the device's first non-bot anonymous event (kept in the identity map, so
    -- that this needs no scan of every event)
    select anonymous_id, first_anonymous_at as first_event_at
    from {{ ref('int_identity_map') }}
    where first_anonymous_at is not null
      and anonymous_id in ({{ remapped_anonymous_ids }})
) as moved
inner join (
    -- the new owner, every user_id seen on the device, the device itself
    select anonymous_id, user_key
    from {{ ref('int_identity_map') }}
    where anonymous_id in ({{ remapped_anonymous_ids }})

    union

    select anonymous_id, user_id as user_key
    from {{ ref('int_device_users') }}
    where anonymous_id in ({{ remapped_anonymous_ids }})

    union

    select anonymous_id, anonymous_id as user_key
    from {{ ref('int_identity_map') }}
    where anonymous_id in ({{ remapped_anonymous_ids }})
) as owners
    on moved.anonymous_id = owners.anonymous_id
{% endmacro %}
