{# One row per logical event (DESIGN §1.1): de-duplicated by event_id (earliest received_at
   wins), fields extracted from the JSON documents, bots flagged. Incremental: re-derives the
   event_ids with newly loaded copies (README "Incrementality"). #}
{{
  config(
    materialized=nightjar.incremental_materialization(),
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
  )
}}

{%- set context_paths = ['page.url', 'page.path', 'page.referrer', 'page.title', 'campaign.source', 'campaign.medium', 'campaign.name', 'user_agent', 'locale', 'timezone', 'geo.country', 'geo.city'] -%}
{%- set properties_paths = ['product_id', 'category', 'price', 'quantity', 'cart_value', 'revenue', 'currency', 'order_id', 'query', 'method'] -%}

{#- The copies of one event_id in the order that keeps the first. -#}
{%- set copy_order -%}
    coalesce(
        {{ nightjar.to_utc_timestamp('received_at') }},
        {{ nightjar.to_utc_timestamp(adapter.quote('timestamp')) }}
    ),
    {{ nightjar.to_utc_timestamp('_loaded_at') }},
    _file,
    _line
{%- endset -%}
{#- Per copy: its rank (1 = kept), the event's number of copies and newest load. -#}
{%- set copy_windows -%}
    row_number() over (partition by event_id order by {{ copy_order }}) as copy_rank,
    count(*) over (partition by event_id) as copies,
    max({{ nightjar.to_utc_timestamp('_loaded_at') }}) over (partition by event_id) as _last_loaded_at
{%- endset -%}
{%- set page_url_raw = nightjar.json_field('_context_fields', 'context', context_paths, 'page.url') -%}
{%- set raw_columns = ['event_id', 'event_name', adapter.quote('timestamp'), 'received_at', 'anonymous_id', 'user_id', 'session_id', 'properties', 'context', '_file', '_line', '_loaded_at'] -%}

{#- The ~1 KB JSON documents never go through a window or a large join (README "stg_events").
    raw.events is referenced directly: DuckDB would materialise a CTE with two consumers. #}
with

{% if is_incremental() %}
new_event_ids as (

    select distinct event_id
    from {{ source('raw', 'events') }}
    -- _loaded_at compared as stored (no function on the column), so the database can skip
    -- the older loads by their min/max statistics instead of reading the whole column
    where _loaded_at > (
        select {{ nightjar.utc_to_timestamptz("coalesce(max(_last_loaded_at), cast('1900-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ "))") }}
        from {{ this }}
    )
    {% if nightjar.is_backfill() %}
       -- backfill: also every event whose timestamp is in the window (macros/backfill.sql)
       or {{ nightjar.in_backfill_window(nightjar.to_utc_timestamp(adapter.quote('timestamp'))) }}
    {% endif %}

),

copies as (

    -- every raw copy of those events, earlier nights' included
    select event_id, {{ adapter.quote('timestamp') }}, received_at, _file, _line, _loaded_at
    from {{ source('raw', 'events') }}
    where event_id in (select event_id from new_event_ids)

),

ranked_copies as (

    select
        event_id,
        _file,
        _line,
        _loaded_at,
        {{ copy_windows }}
    from copies

),

kept_copies as (

    select event_id, _file, _line, _loaded_at, copies, _last_loaded_at
    from ranked_copies
    where copy_rank = 1

),

kept_rows as (

    -- a raw row is identified by (_file, _line); matching on _loaded_at as well lets the
    -- database read only the loads that hold kept copies (usually tonight's)
    select raw_events.*, kept_copies.copies, kept_copies._last_loaded_at
    from {{ source('raw', 'events') }} as raw_events
    inner join kept_copies
        on raw_events._loaded_at = kept_copies._loaded_at
        and raw_events._file = kept_copies._file
        and raw_events._line = kept_copies._line
        and raw_events.event_id = kept_copies.event_id

),
{% else %}
duplicated_event_ids as (

    select event_id
    from {{ source('raw', 'events') }}
    group by event_id
    having count(*) > 1

),

single_copies as (

    select
        {% for c in raw_columns %}raw_events.{{ c }}, {% endfor %}
        cast(1 as {{ dbt.type_bigint() }}) as copies,
        {{ nightjar.to_utc_timestamp('raw_events._loaded_at') }} as _last_loaded_at
    from {{ source('raw', 'events') }} as raw_events
    where not exists (
        select 1 from duplicated_event_ids
        where duplicated_event_ids.event_id = raw_events.event_id
    )

),

ranked_duplicates as (

    select
        {% for c in raw_columns %}{{ c }}, {% endfor %}
        {{ copy_windows }}
    from {{ source('raw', 'events') }}
    where event_id in (select event_id from duplicated_event_ids)

),

kept_rows as (

    select * from single_copies
    union all
    select {% for c in raw_columns %}{{ c }}, {% endfor %}copies, _last_loaded_at
    from ranked_duplicates
    where copy_rank = 1

),
{% endif %}

renamed as (

    select
        cast(event_id as {{ dbt.type_string() }}) as event_id,
        {{ nightjar.normalize_event_name('event_name') }} as event_name,
        {{ nightjar.to_utc_timestamp(adapter.quote('timestamp')) }} as event_timestamp,
        coalesce(
            {{ nightjar.to_utc_timestamp('received_at') }},
            {{ nightjar.to_utc_timestamp(adapter.quote('timestamp')) }}
        ) as received_at,
        -- PII: identifiers shaped like an e-mail address become their keyed HMAC, as the
        -- shop's customer_id does in stg_customers / stg_orders (so they still join)
        {{ nightjar.pseudonymise_identifier('cast(anonymous_id as ' ~ dbt.type_string() ~ ')') }} as anonymous_id,
        {{ nightjar.pseudonymise_identifier("nullif(trim(cast(user_id as " ~ dbt.type_string() ~ ")), '')") }} as user_id,
        cast(session_id as {{ dbt.type_string() }}) as client_session_id,
        cast(properties as {{ dbt.type_string() }}) as properties,
        cast(context as {{ dbt.type_string() }}) as context,
        _file,
        _line,
        {{ nightjar.to_utc_timestamp('_loaded_at') }} as _loaded_at,
        copies,
        _last_loaded_at
    from kept_rows
    -- Segment alias/group calls stay in raw only: they link ids and accounts, they are not
    -- user activity (DESIGN "Segment exports"); a native event of the same name is kept
    where not (event_name in ('alias', 'group') and _file like 'segment-logs/%')

),

deduplicated as (

    select
        renamed.*,
        -- each JSON document parsed once for all its fields (macros/json_extract_many.sql)
        {{ nightjar.json_extract_many('context', context_paths) }} as _context_fields,
        {{ nightjar.json_extract_many('properties', properties_paths) }} as _properties_fields
    from renamed

),

extracted as (

    select
        event_id,
        event_name,
        event_timestamp,
        cast(event_timestamp as date) as event_date,
        received_at,
        anonymous_id,
        user_id,
        client_session_id,

        -- context; URLs lose their query string and fragment (e-mails, tokens, IPs passed as
        -- parameters), after the UTM parameters of the page URL are read from it
        {{ nightjar.strip_url_query(page_url_raw) }} as page_url,
        {{ nightjar.strip_url_query(nightjar.json_field('_context_fields', 'context', context_paths, 'page.path')) }} as page_path,
        {{ nightjar.strip_url_query(nightjar.json_field('_context_fields', 'context', context_paths, 'page.referrer')) }} as referrer,
        {{ nightjar.json_field('_context_fields', 'context', context_paths, 'page.title') }} as page_title,
        coalesce({{ nightjar.json_field('_context_fields', 'context', context_paths, 'campaign.source') }}, {{ nightjar.url_query_param(page_url_raw, 'utm_source') }}) as utm_source,
        coalesce({{ nightjar.json_field('_context_fields', 'context', context_paths, 'campaign.medium') }}, {{ nightjar.url_query_param(page_url_raw, 'utm_medium') }}) as utm_medium,
        coalesce({{ nightjar.json_field('_context_fields', 'context', context_paths, 'campaign.name') }}, {{ nightjar.url_query_param(page_url_raw, 'utm_campaign') }}) as utm_campaign,
        {{ nightjar.json_field('_context_fields', 'context', context_paths, 'user_agent') }} as user_agent,
        {{ nightjar.json_field('_context_fields', 'context', context_paths, 'locale') }} as locale,
        {{ nightjar.json_field('_context_fields', 'context', context_paths, 'timezone') }} as client_timezone,
        {{ nightjar.json_field('_context_fields', 'context', context_paths, 'geo.country') }} as country,
        {{ nightjar.json_field('_context_fields', 'context', context_paths, 'geo.city') }} as city,

        -- properties
        {{ nightjar.json_field('_properties_fields', 'properties', properties_paths, 'product_id') }} as product_id,
        {{ nightjar.json_field('_properties_fields', 'properties', properties_paths, 'category') }} as category,
        {{ dbt.safe_cast(nightjar.json_field('_properties_fields', 'properties', properties_paths, 'price'), nightjar.type_double()) }} as price,
        {{ dbt.safe_cast(nightjar.json_field('_properties_fields', 'properties', properties_paths, 'quantity'), dbt.type_bigint()) }} as quantity,
        {{ dbt.safe_cast(nightjar.json_field('_properties_fields', 'properties', properties_paths, 'cart_value'), nightjar.type_double()) }} as cart_value,
        {{ dbt.safe_cast(nightjar.json_field('_properties_fields', 'properties', properties_paths, 'revenue'), nightjar.type_double()) }} as revenue,
        upper({{ nightjar.json_field('_properties_fields', 'properties', properties_paths, 'currency') }}) as currency,
        {{ nightjar.json_field('_properties_fields', 'properties', properties_paths, 'order_id') }} as order_id,
        {{ nightjar.json_field('_properties_fields', 'properties', properties_paths, 'query') }} as search_query,
        {{ nightjar.json_field('_properties_fields', 'properties', properties_paths, 'method') }} as signup_method,

        copies,
        _file,
        _line,
        _loaded_at,
        _last_loaded_at
    from deduplicated

),

final as (

    select
        extracted.*,
        coalesce(
            {{ nightjar.regex_matches_ci('user_agent', var('bot_user_agent_pattern')) }},
            false
        ) as is_bot
    from extracted

)

select
    event_id,
    event_name,
    event_timestamp,
    event_date,
    received_at,
    anonymous_id,
    user_id,
    client_session_id,
    page_url,
    page_path,
    referrer,
    page_title,
    utm_source,
    utm_medium,
    utm_campaign,
    user_agent,
    case
        when is_bot then 'bot'
        when user_agent is null or trim(user_agent) = '' then 'unknown'
        when {{ nightjar.regex_matches_ci('user_agent', 'ipad|tablet|kindle|silk|playbook') }} then 'tablet'
        when {{ nightjar.regex_matches_ci('user_agent', 'mobi|iphone|ipod|android|blackberry|opera mini|windows phone') }} then 'mobile'
        else 'desktop'
    end as device_type,
    locale,
    client_timezone,
    country,
    city,
    product_id,
    category,
    price,
    quantity,
    cart_value,
    revenue,
    currency,
    order_id,
    search_query,
    signup_method,
    is_bot,
    copies,
    _file,
    _line,
    _loaded_at,
    _last_loaded_at
from final
