{# Events with their user_key (DESIGN §2): the event's user_id, else the most recent user_id
   seen on its anonymous_id (int_identity_map), else the anonymous_id. Bots are kept (is_bot). #}
with events as (

    select * from {{ ref('stg_events') }}

),

identity_map as (

    select anonymous_id, identified_user_id from {{ ref('int_identity_map') }}

)

select
    coalesce(events.user_id, identity_map.identified_user_id, events.anonymous_id) as user_key,
    coalesce(events.user_id, identity_map.identified_user_id) is not null as is_identified_user,
    events.event_id,
    events.event_name,
    events.event_timestamp,
    events.event_date,
    events.anonymous_id,
    events.user_id,
    events.page_path,
    events.page_url,
    events.referrer,
    events.utm_source,
    events.utm_medium,
    events.utm_campaign,
    events.device_type,
    events.country,
    events.product_id,
    events.category,
    events.price,
    events.quantity,
    events.cart_value,
    events.revenue,
    events.currency,
    events.order_id,
    events.is_bot,
    events._last_loaded_at
from events
left join identity_map
    on events.anonymous_id = identity_map.anonymous_id
