{#
  What changed since an incremental model's last run, for the models keyed on devices
  (int_identity_map: anonymous_id) and on stitched users (int_user_activity_daily,
  fct_sessions: user_key). Each such model keeps its own watermark column (default
  `_max_loaded_at` = the newest stg_events `_last_loaded_at` behind its rows), so a model
  that failed or was skipped one night catches up the next. Portable SQL.

    watermark(column)                        this model's watermark (1900-01-01 when empty)
    new_events_condition(column)             a WHERE condition on stg_events: the rows loaded
                                             after the watermark, plus, in a backfill, the
                                             events in the window
    touched_anonymous_ids(column)            the anonymous_ids of those rows
    user_change_points(column)               one row per user_key whose events or stitching
                                             may differ from the last run, with the time
                                             `changed_from` before which they cannot differ
    events_of_user_keys(relation, column)    the int_events_stitched rows of those user_keys
                                             (from a time per user), read without stitching
                                             the whole history
    delete_identified_anonymous_keys()       post-hook: drop the keys of identified devices

  A model that uses these must declare `-- depends_on:` for stg_events, int_identity_map and
  int_device_users: refs inside the incremental branch are not seen when dbt parses.
  Known limit (as for any watermark): a retried delivery whose *content* differs from the
  copy it replaces can leave stale rows for its old anonymous_id until a full refresh.
#}

{% macro watermark(watermark_column='_max_loaded_at') -%}
    (
        select coalesce(max({{ watermark_column }}), cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }}))
        from {{ this }}
    )
{%- endmacro %}


{% macro new_events_condition(watermark_column='_max_loaded_at') %}
    (
        _last_loaded_at > {{ nightjar.watermark(watermark_column) }}
        {% if nightjar.is_backfill() %}
        -- backfill: also every event whose timestamp is in the window (macros/backfill.sql)
        or {{ nightjar.in_backfill_window('event_timestamp') }}
        {% endif %}
    )
{% endmacro %}


{% macro touched_anonymous_ids(watermark_column='_max_loaded_at') %}
    select distinct anonymous_id
    from {{ ref('stg_events') }}
    where {{ nightjar.new_events_condition(watermark_column) }}
{% endmacro %}


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
#}
{% macro user_change_points(watermark_column='_max_loaded_at') %}
    {%- set remapped_anonymous_ids -%}
        select anonymous_id
        from {{ ref('int_identity_map') }}
        where _mapped_loaded_at > {{ nightjar.watermark(watermark_column) }}
    {%- endset -%}
    select user_key, min(changed_from) as changed_from
    from (

        select user_key, event_timestamp as changed_from
        from {{ ref('int_events_stitched') }}
        where not is_bot
          and _last_loaded_at > {{ nightjar.watermark(watermark_column) }}

        union all

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
  The stitched events of the user_keys in the relation/CTE `user_keys` (column user_key),
  or with `from_column`, only each user's events at or after its value of that column.
  An event's user_key is its own user_id, else its anonymous_id's mapping, so the rows are
  the events carrying one of these user_ids plus the anonymous events of the anonymous_ids
  mapped to one of them. These filters (and the smallest `from_column` value) are on
  stg_events columns and are applied before the stitching join: filtering
  int_events_stitched on user_key instead would stitch every event of the history first.
#}
{% macro events_of_user_keys(user_keys, from_column=none) %}
    {%- set since -%}
        {%- if from_column %} and event_timestamp >= (select min({{ from_column }}) from {{ user_keys }}){% endif -%}
    {%- endset -%}
    select user_events.*
    from (
        select *
        from {{ ref('int_events_stitched') }}
        where user_id in (select user_key from {{ user_keys }}){{ since }}

        union all

        select *
        from {{ ref('int_events_stitched') }}
        where user_id is null
          and anonymous_id in (
              select anonymous_id
              from {{ ref('int_identity_map') }}
              where user_key in (select user_key from {{ user_keys }})
          ){{ since }}
    ) as user_events
    {% if from_column %}
    inner join {{ user_keys }} as user_bounds
        on user_events.user_key = user_bounds.user_key
    where user_events.event_timestamp >= user_bounds.{{ from_column }}
    {% endif %}
{% endmacro %}


{#
  Post-hook of the models keyed on user_key: an anonymous_id that got identified is no
  longer a user_key. The strategy (macros/replace_changed_users.sql) already replaces its
  rows from its first anonymous event when its mapping changed since the watermark; this
  deletes whatever rows such a key still has, whatever path the run took.
#}
{% macro delete_identified_anonymous_keys() %}
    delete from {{ this }}
    where user_key in (select anonymous_id from {{ ref('int_identity_map') }} where is_identified)
{% endmacro %}
