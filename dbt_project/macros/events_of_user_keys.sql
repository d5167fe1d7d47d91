{#
  events_of_user_keys(user_keys, from_column): the stitched events of the user_keys in the
  relation/CTE `user_keys` (column user_key); with `from_column`, only each user's events
  at or after its value of that column.
  An event's user_key is its own user_id, else its anonymous_id's mapping, so the rows are
  the events carrying one of these user_ids plus the anonymous events of the anonymous_ids
  mapped to one of them. These filters (and the smallest `from_column` value) are on
  stg_events columns and are applied before the stitching join: filtering
  int_events_stitched on user_key instead would stitch every event of the history first.
  The calling model declares `-- depends_on:` int_identity_map: refs inside its
  incremental branch are not seen when dbt parses.
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
