with source as (

    select * from {{ source('raw', 'order_items') }}

),

latest as (

{{ nightjar.latest_version('source', 'order_id, line_number', '_dlt_load_id desc') }}

),

orders as (

    select order_id, currency from {{ ref('stg_orders') }}

),

rates as (

    select * from {{ ref('currency_rates') }}

),

renamed as (

    select
        cast(latest.order_id as {{ dbt.type_string() }}) as order_id,
        cast(latest.line_number as {{ dbt.type_bigint() }}) as line_number,
        cast(latest.product_id as {{ dbt.type_string() }}) as product_id,
        cast(latest.quantity as {{ dbt.type_bigint() }}) as quantity,
        cast(latest.unit_price as {{ nightjar.type_double() }}) as unit_price
    from latest
    -- the items of a quarantined order count nowhere, like the order (stg_orders_rejected)
    where not exists (
        select 1 from {{ ref('stg_orders_rejected') }} as rejected
        where rejected.order_id = cast(latest.order_id as {{ dbt.type_string() }})
    )

)

select
    renamed.order_id,
    renamed.line_number,
    renamed.product_id,
    renamed.quantity,
    renamed.unit_price,
    renamed.quantity * renamed.unit_price as line_amount,
    renamed.quantity * renamed.unit_price * rates.usd_per_unit as line_amount_usd
from renamed
left join orders
    on renamed.order_id = orders.order_id
left join rates
    on orders.currency = rates.currency
